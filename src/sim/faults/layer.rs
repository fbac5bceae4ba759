//! The HTTP side of faults: two middlewares around every Fly API route, and the answers they
//! give.
//!
//! [`transport`] runs before authentication (an outage or a slow network does not care about
//! tokens): `latency`, `apiDown`, `storm429`, `errorRate`. [`handler`] runs after
//! authentication and rate limits, right before the handler: `listEmptyOnce`,
//! `concurrentUpdate`, and `createTimesOutButSucceeds`, which lets the create happen and
//! then holds or drops its answer.
//!
//! A dropped answer is a response whose body fails on its first read. Over a socket, hyper
//! then closes the connection before it has written a byte (the status line sits unflushed
//! in its buffer when the body errors), so a client such as reqwest sees a transport error,
//! "connection closed before message completed", and never a status. Through
//! `tower::ServiceExt::oneshot` the response arrives but reading its body fails.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{After, Answer, Call, Plan, Stage};
use crate::fly::wire::ErrorResponse;
use crate::sim::limits::too_many_requests;
use crate::sim::state::SimState;

/// The state both middlewares receive: the simulator and the route template.
pub type RouteState = (SimState, &'static str);

/// Middleware before authentication: delays, outages, 429 storms, 5xx.
pub async fn transport(
    State((state, template)): State<RouteState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let plan = plan(&state, Stage::Transport, template, &params, &req);
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    match plan.answer {
        Some(answer) => respond(answer),
        None => next.run(req).await,
    }
}

/// Middleware right before the handler: faults tied to one Fly call.
pub async fn handler(
    State((state, template)): State<RouteState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let plan = plan(&state, Stage::Handler, template, &params, &req);
    if let Some(answer) = plan.answer {
        return respond(answer);
    }
    let resp = next.run(req).await;
    match plan.after {
        Some((id, after)) if resp.status().is_success() && state.confirm_fault(id) => {
            state.count_fault(super::FaultKind::CreateTimesOutButSucceeds.as_str());
            match after {
                After::Delay(d) => {
                    tokio::time::sleep(d).await;
                    resp
                }
                After::Drop => dropped(),
            }
        }
        _ => resp,
    }
}

fn plan(
    state: &SimState,
    stage: Stage,
    template: &'static str,
    params: &Result<RawPathParams, RawPathParamsRejection>,
    req: &Request,
) -> Plan {
    let key = format!("{} {template}", req.method());
    let machine = params
        .as_ref()
        .ok()
        .and_then(|p| p.iter().find(|(k, _)| *k == "id").map(|(_, v)| v));
    let call = Call {
        key: &key,
        template,
        machine,
    };
    let plan = state.plan_faults(stage, &call);
    for kind in &plan.fired {
        state.count_fault(kind.as_str());
    }
    plan
}

fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Drop => dropped(),
        Answer::TooMany(wait) => too_many_requests(wait),
        Answer::Error { status, message } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let body = ErrorResponse {
                error: message,
                status: None,
                message: None,
            };
            (status, Json(body)).into_response()
        }
        Answer::EmptyList => Json(Vec::<serde_json::Value>::new()).into_response(),
    }
}

/// A response that never arrives: its body fails on the first read (see the module docs).
pub fn dropped() -> Response {
    Response::new(Body::new(FailingBody))
}

/// A body whose first frame is an error.
#[derive(Debug)]
struct FailingBody;

/// Why a [`FailingBody`] failed.
#[derive(Debug, thiserror::Error)]
#[error("simulated outage: connection closed without an answer")]
struct Outage;

impl HttpBody for FailingBody {
    type Data = Bytes;
    type Error = Outage;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Outage>>> {
        Poll::Ready(Some(Err(Outage)))
    }
}
