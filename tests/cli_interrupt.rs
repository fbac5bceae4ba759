//! Ctrl-C during `apply` (defect 6: a second and third Ctrl-C were ignored silently). The
//! first says what happens and stops after the current step; the second exits at once with
//! 130 and says why that is safe.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Lines, NEW, Sim, Workspace, eventually, scenario_with_faults, send_signal};

#[test]
fn a_second_ctrl_c_exits_at_once_with_130() {
    // Machine updates take 20 s to answer, so the first Ctrl-C lands inside a step.
    let (_dir, scenario) = scenario_with_faults(
        "  - kind: latency\n    route: \"POST /v1/apps/{app}/machines/{id}\"\n    delay: 20s\n",
    );
    let sim = Sim::start_with(&scenario);
    let ws = Workspace::new(NEW);
    let mut child = ws
        .opsctl(&sim)
        .arg("apply")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    assert!(
        lines.wait_for("update 148ed193b95d89", Duration::from_secs(10)),
        "{}",
        lines.all()
    );
    std::thread::sleep(Duration::from_millis(200));

    send_signal(&child, "INT");
    assert!(
        lines.wait_for(
            "stopping after the current step (press Ctrl-C again to exit now)",
            Duration::from_secs(5)
        ),
        "{}",
        lines.all()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still in its step: {}",
        lines.all()
    );

    send_signal(&child, "INT");
    let status = eventually(Duration::from_secs(5), || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        panic!("a second Ctrl-C did not end apply: {}", lines.all());
    };
    assert_eq!(status.code(), Some(130), "{}", lines.all());
    assert!(
        lines.wait_for("append-only", Duration::from_secs(1)),
        "{}",
        lines.all()
    );
    assert!(lines.all().contains("13 s"), "{}", lines.all());
}
