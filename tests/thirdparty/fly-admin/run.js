// Drives the npm package `fly-admin` (Supabase's TypeScript client of the Fly Machines API),
// unmodified, against `opsctl sim serve`. Plain Node, no build step.
//
// Usage: FLY_SIM_URL=http://127.0.0.1:PORT node run.js   (tests/thirdparty/run.sh does this)
//
// Prints one line per call: `PASS name` or `FAIL name: reason`. Calls listed in EXPECTED_FAIL
// exercise what the simulator does not serve yet (docs/fly-compat.md); they print
// `XFAIL name: reason`, or `XPASS name` once they start to work. Exits 1 when any other call
// fails. The only thing that is not fly-admin here is `/__sim/advance` (the simulator's
// control API), used to let a lease expire because fly-admin cannot release one.
'use strict';

const Client = require('fly-admin/dist/client').default;
const { MachineState } = require('fly-admin/dist/lib/machine');

const SIM = process.env.FLY_SIM_URL;
if (!SIM) {
  console.error('FLY_SIM_URL is not set (run tests/thirdparty/run.sh)');
  process.exit(2);
}
const TOKEN = process.env.FLY_API_TOKEN || 'thirdparty-test-token';
const APP = 'lowendinsight';
const M1 = '148ed193b95d89';
const NEW = 'registry.fly.io/lowendinsight:deployment-NEW';
const OLD = 'registry.fly.io/lowendinsight:deployment-OLD';

// Calls the simulator does not serve yet; keep in step with docs/fly-compat.md.
const EXPECTED_FAIL = new Set([
  'Machine.listProcesses',
  'App.getAppDetailed',
]);

// fly-admin's own option: `new Client(token, { apiUrl, graphqlUrl })` (dist/client.js).
const fly = new Client(TOKEN, { apiUrl: SIM, graphqlUrl: SIM });

let failed = 0;
let passed = 0;
let xfail = 0;

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

// Stay under Fly's documented limits (1 req/s per action per machine, burst 3; NOTES.md
// §2.9) the way a polite client would: a token bucket per (action, machine).
const buckets = new Map();
async function pace(action, machine) {
  const key = `${action} ${machine || ''}`;
  const now = Date.now();
  const b = buckets.get(key) || { tokens: 3, at: now };
  b.tokens = Math.min(3, b.tokens + (now - b.at) / 1000);
  b.at = now;
  if (b.tokens < 1) {
    const waitMs = Math.ceil((1 - b.tokens) * 1000);
    await new Promise((r) => setTimeout(r, waitMs));
    b.tokens = 1;
    b.at = Date.now();
  }
  b.tokens -= 1;
  buckets.set(key, b);
}

async function step(name, fn) {
  try {
    const detail = await fn();
    if (EXPECTED_FAIL.has(name)) {
      console.log(`XPASS ${name}: now passes; update EXPECTED_FAIL and docs/fly-compat.md`);
    } else {
      console.log(`PASS ${name}${detail ? ` (${detail})` : ''}`);
    }
    passed += 1;
  } catch (e) {
    let reason = String((e && e.message) || e).replace(/\s+/g, ' ').slice(0, 300);
    if (reason.startsWith('429:')) reason += ' [rate limited by the simulator]';
    if (EXPECTED_FAIL.has(name)) {
      console.log(`XFAIL ${name}: ${reason}`);
      xfail += 1;
    } else {
      console.log(`FAIL ${name}: ${reason}`);
      failed += 1;
    }
  }
}

// Expects fly-admin to throw `STATUS: body` (its restOrThrow) with this status.
async function expectStatus(status, fn) {
  try {
    await fn();
  } catch (e) {
    const msg = String(e.message || e);
    if (msg.startsWith(`${status}:`)) return msg;
    throw new Error(`expected HTTP ${status}, got ${msg}`);
  }
  throw new Error(`expected HTTP ${status}, got success`);
}

async function advance(by) {
  const resp = await fetch(`${SIM}/__sim/advance`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ by }),
  });
  if (!resp.ok) throw new Error(`/__sim/advance: ${resp.status}`);
}

function config(image, extraMetadata) {
  return {
    image,
    guest: { cpu_kind: 'shared', cpus: 1, memory_mb: 256 },
    env: { PORT: '8080' },
    metadata: Object.assign(
      { fly_platform_version: 'v2', fly_process_group: 'app' },
      extraMetadata || {},
    ),
    services: [
      {
        protocol: 'tcp',
        internal_port: 8080,
        ports: [
          { port: 80, handlers: ['http'], force_https: true },
          { port: 443, handlers: ['tls', 'http'] },
        ],
        checks: [{ type: 'tcp', interval: '15s', timeout: '2s', grace_period: '1s' }],
      },
    ],
  };
}

async function waitFor(id, instance_id, state) {
  await pace('wait', id);
  const r = await fly.Machine.waitMachine({
    app_name: APP,
    machine_id: id,
    instance_id,
    state,
    timeout: '30s',
  });
  assert(r && r.ok === true, `wait ${state} answers ok: ${JSON.stringify(r)}`);
}

async function main() {
  console.log(`fly-admin ${require('fly-admin/package.json').version} against ${SIM}`);

  await step('App.getApp', async () => {
    const app = await fly.App.getApp(APP);
    assert(app && app.name === APP, `name is ${APP}: ${JSON.stringify(app)}`);
    assert(app.organization && typeof app.organization.slug === 'string', 'organization.slug');
    return `status ${app.status}`;
  });

  await step('App.getAppDetailed', async () => {
    const app = await fly.App.getAppDetailed(APP);
    assert(app && app.name === APP, 'name');
  });

  await step('Machine.listMachines', async () => {
    const ms = await fly.Machine.listMachines(APP);
    assert(Array.isArray(ms) && ms.length >= 2, `at least 2 machines: ${JSON.stringify(ms)}`);
    for (const m of ms) {
      assert(/^[0-9a-f]{14,15}$/.test(m.id), `hex id ${m.id}`);
      assert(m.config && typeof m.config.image === 'string', 'config.image');
      assert(typeof m.instance_id === 'string' && m.instance_id.length === 26, 'ULID instance_id');
    }
    return `${ms.length} machines`;
  });

  await step('Machine.listMachines(region)', async () => {
    const ms = await fly.Machine.listMachines({ app_name: APP, region: 'iad' });
    assert(ms.length >= 2 && ms.every((m) => m.region === 'iad'), 'all in iad');
    const none = await fly.Machine.listMachines({ app_name: APP, region: 'syd' });
    assert(Array.isArray(none) && none.length === 0, 'none in syd');
  });

  await step('Machine.getMachine', async () => {
    await pace('get', M1);
    const m = await fly.Machine.getMachine({ app_name: APP, machine_id: M1 });
    assert(m.id === M1, 'id');
    assert(Object.values(MachineState).includes(m.state), `state ${m.state} is a fly-admin MachineState`);
    assert(Array.isArray(m.events) && m.events.length > 0, 'events');
  });

  await step('Machine.getMachine(unknown) is 404', async () => {
    const msg = await expectStatus(404, () =>
      fly.Machine.getMachine({ app_name: APP, machine_id: '00000000000000' }),
    );
    assert(/machine not found/.test(msg), `Fly's text: ${msg}`);
  });

  let id;
  let instance;
  await step('Machine.createMachine', async () => {
    await pace('create', APP);
    const m = await fly.Machine.createMachine({
      app_name: APP,
      name: 'fly-admin-test',
      region: 'iad',
      config: config(OLD, { created_by: 'fly-admin' }),
    });
    assert(m && /^[0-9a-f]{14,15}$/.test(m.id), `created: ${JSON.stringify(m)}`);
    assert(m.name === 'fly-admin-test' && m.region === 'iad', 'name and region');
    assert(m.config.metadata.created_by === 'fly-admin', 'metadata kept');
    id = m.id;
    instance = m.instance_id;
    return `${m.id} ${m.state}`;
  });

  await step('Machine.waitMachine(started)', async () => {
    await waitFor(id, instance, 'started');
    await pace('get', id);
    const m = await fly.Machine.getMachine({ app_name: APP, machine_id: id });
    assert(m.state === 'started', `state ${m.state}`);
  });

  await step('Machine.updateMachine', async () => {
    await pace('update', id);
    const m = await fly.Machine.updateMachine({
      app_name: APP,
      machine_id: id,
      config: config(NEW, { created_by: 'fly-admin' }),
    });
    assert(m.config.image === NEW, `image ${m.config.image}`);
    assert(m.instance_id !== instance, 'new instance_id');
    instance = m.instance_id;
    await waitFor(id, instance, 'started');
    return `${m.state} -> started`;
  });

  await step('Machine.listEvents', async () => {
    const ev = await fly.Machine.listEvents({ app_name: APP, machine_id: id });
    assert(Array.isArray(ev) && ev.length >= 3, `events: ${JSON.stringify(ev)}`);
    for (let i = 1; i < ev.length; i++) {
      assert(ev[i - 1].timestamp >= ev[i].timestamp, 'newest first');
    }
    assert(ev.some((e) => e.type === 'update'), 'an update event');
    return `${ev.length} events, newest ${ev[0].type}/${ev[0].status}`;
  });

  await step('Machine.stopMachine', async () => {
    await pace('stop', id);
    const r = await fly.Machine.stopMachine({ app_name: APP, machine_id: id });
    assert(r && r.ok === true, `ok: ${JSON.stringify(r)}`);
    await waitFor(id, instance, 'stopped');
  });

  await step('Machine.startMachine', async () => {
    await pace('start', id);
    const r = await fly.Machine.startMachine({ app_name: APP, machine_id: id });
    assert(r && r.previous_state === 'stopped', `previous_state: ${JSON.stringify(r)}`);
    await waitFor(id, instance, 'started');
  });

  await step('Machine.restartMachine', async () => {
    await pace('restart', id);
    await fly.Machine.restartMachine({ app_name: APP, machine_id: id });
    await waitFor(id, instance, 'started');
  });

  await step('Machine.cordonMachine', async () => {
    await pace('cordon', id);
    await fly.Machine.cordonMachine({ app_name: APP, machine_id: id });
    const m = await fly.Machine.getMachine({ app_name: APP, machine_id: id });
    assert(m.cordoned === true, 'cordoned');
  });

  await step('Machine.uncordonMachine', async () => {
    await pace('uncordon', id);
    await fly.Machine.uncordonMachine({ app_name: APP, machine_id: id });
    const m = await fly.Machine.getMachine({ app_name: APP, machine_id: id });
    assert(m.cordoned === false, 'uncordoned');
  });

  await step('Machine.signalMachine', async () => {
    await fly.Machine.signalMachine({ app_name: APP, machine_id: id, signal: 'SIGHUP' });
  });

  await step('Machine.listVersions', async () => {
    const v = await fly.Machine.listVersions({ app_name: APP, machine_id: id });
    assert(Array.isArray(v) && v.length >= 2, 'two versions');
  });

  await step('Machine.listProcesses', async () => {
    const p = await fly.Machine.listProcesses({ app_name: APP, machine_id: id });
    assert(Array.isArray(p), 'process list');
  });

  let nonce;
  await step('Machine.acquireLease', async () => {
    await pace('lease', id);
    const r = await fly.Machine.acquireLease({
      app_name: APP,
      machine_id: id,
      ttl: 30,
      description: 'fly-admin test',
    });
    assert(r && r.status === 'success' && r.data, `envelope: ${JSON.stringify(r)}`);
    assert(typeof r.data.nonce === 'string' && r.data.nonce.length > 0, 'nonce');
    assert(r.data.version === instance, 'lease version = instance_id');
    assert(r.data.expires_at > Date.now() / 1000 - 60, 'expires_at in unix seconds');
    nonce = r.data.nonce;
    return `expires_at ${r.data.expires_at}`;
  });

  await step('Machine.getLease', async () => {
    const r = await fly.Machine.getLease({ app_name: APP, machine_id: id });
    assert(r.status === 'success' && r.data.nonce === nonce, `same nonce: ${JSON.stringify(r)}`);
    assert(r.data.description === 'fly-admin test', 'description');
  });

  await step('Machine.acquireLease(held) is 409', async () => {
    await pace('lease', id);
    const msg = await expectStatus(409, () =>
      fly.Machine.acquireLease({ app_name: APP, machine_id: id, ttl: 30 }),
    );
    assert(/lease currently held by/.test(msg), `Fly's text: ${msg}`);
  });

  // fly-admin cannot send `fly-machine-lease-nonce`, so under a lease its mutations are
  // refused, as Fly refuses them.
  await step('Machine.updateMachine(leased) is 409', async () => {
    await pace('update', id);
    const msg = await expectStatus(409, () =>
      fly.Machine.updateMachine({ app_name: APP, machine_id: id, config: config(OLD) }),
    );
    assert(/lease currently held by/.test(msg), `Fly's text: ${msg}`);
  });

  // fly-admin has no releaseLease (its README lists it as TODO): let the lease expire.
  await step('Machine.getLease(expired) is 404', async () => {
    await advance('31s');
    await expectStatus(404, () => fly.Machine.getLease({ app_name: APP, machine_id: id }));
  });

  await step('Machine.deleteMachine(running, no force) is refused', async () => {
    await pace('destroy', id);
    const msg = await expectStatus(412, () =>
      fly.Machine.deleteMachine({ app_name: APP, machine_id: id }),
    );
    return msg.slice(0, 80);
  });

  await step('Machine.deleteMachine(force)', async () => {
    await pace('destroy', id);
    const r = await fly.Machine.deleteMachine({ app_name: APP, machine_id: id, force: true });
    assert(r && r.ok === true, `ok: ${JSON.stringify(r)}`);
    await waitFor(id, instance, 'destroyed');
    const ms = await fly.Machine.listMachines(APP);
    assert(!ms.some((m) => m.id === id), 'gone from the list');
    const all = await fly.Machine.listMachines({ app_name: APP, include_deleted: 'true' });
    assert(all.some((m) => m.id === id && m.state === 'destroyed'), 'listed with include_deleted');
  });

  await step('Machine.waitMachine(timeout) is 408', async () => {
    await expectStatus(408, () =>
      fly.Machine.waitMachine({
        app_name: APP,
        machine_id: M1,
        state: 'destroyed',
        timeout: '1s',
      }),
    );
  });

  const summary = `fly-admin summary: ${passed} PASS, ${failed} FAIL, ${xfail} XFAIL (not simulated yet)`;
  console.log(summary);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL harness: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
