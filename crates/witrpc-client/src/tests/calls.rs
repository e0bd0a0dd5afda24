//! Calls: what a request carries, matching responses by id, and status mapping.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use witrpc_core::{CommunicationStatus, WitResponse, ids};

use super::fake::{DEMO, add, connected, within};
use crate::{ClientError, WitClientBuilder};

#[tokio::test]
async fn a_request_carries_the_token_names_types_and_ids() {
    let (client, mut server) = connected(WitClientBuilder::new().with_access_token("secret")).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(add("2", "3")).await }
    });
    let (message, request) = server.request().await;
    assert_eq!(request.token, "secret");
    assert_eq!(request.method_name, "Add");
    assert_eq!(request.parameters, vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")]);
    assert_eq!(request.contract_id, ids::contract_id("Tests.IDemo"));
    assert_eq!(request.method_id, DEMO.resolved().method_ids[0]);
    assert_eq!(request.parameter_types_by_name, DEMO.resolved().method_parameter_types[0]);
    // .NET throws on type names it cannot resolve in ParameterTypes: leave it empty.
    assert!(request.parameter_types.is_empty(), "{:?}", request.parameter_types);
    assert!(!request.invocation_id.is_nil());
    server.respond(&message, WitResponse::ok(Some(Bytes::from_static(b"5")))).await;
    let result = within("call", call).await.unwrap().unwrap();
    assert_eq!(result.as_deref(), Some(&b"5"[..]));
}

#[tokio::test]
async fn concurrent_calls_answered_out_of_order_get_their_own_results() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    const N: usize = 8;
    let arguments: [&'static str; N] = ["0", "1", "2", "3", "4", "5", "6", "7"];
    let calls: Vec<_> = arguments
        .iter()
        .map(|&a| {
            let client = client.clone();
            tokio::spawn(async move { (a, client.call(add(a, "0")).await) })
        })
        .collect();
    let mut requests = Vec::new();
    for _ in 0..N {
        requests.push(server.request().await);
    }
    let ids: HashSet<_> = requests.iter().map(|(m, _)| m.id).collect();
    let invocations: HashSet<_> = requests.iter().map(|(_, r)| r.invocation_id).collect();
    assert_eq!((ids.len(), invocations.len()), (N, N), "ids must be unique per request");
    // Answer last-come first, echoing each request's first argument.
    for (message, request) in requests.iter().rev() {
        server.respond(message, WitResponse::ok(Some(request.parameters[0].clone()))).await;
    }
    for call in calls {
        let (argument, result) = within("call", call).await.unwrap();
        assert_eq!(result.unwrap().as_deref(), Some(argument.as_bytes()));
    }
}

/// Makes one `Add` call that the server answers with `response`.
async fn answered_with(response: WitResponse) -> Result<Option<Bytes>, ClientError> {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    let call = tokio::spawn(async move { client.call(add("1", "2")).await });
    let (message, _) = server.request().await;
    server.respond(&message, response).await;
    within("call", call).await.unwrap()
}

#[tokio::test]
async fn status_200_without_data_is_none() {
    assert_eq!(answered_with(WitResponse::ok(None)).await.unwrap(), None);
    assert_eq!(answered_with(WitResponse::ok(Some(Bytes::new()))).await.unwrap(), None);
}

#[tokio::test]
async fn status_500_is_a_remote_error_with_message_and_details() {
    let response =
        WitResponse::error(CommunicationStatus::InternalServerError, "Failed to process request", Some("boom".into()));
    let err = answered_with(response).await.unwrap_err();
    let shown = err.to_string();
    match err {
        ClientError::Remote { status: CommunicationStatus::InternalServerError, message, details } => {
            assert_eq!(message.as_deref(), Some("Failed to process request"));
            assert_eq!(details.as_deref(), Some("boom"));
        }
        other => panic!("expected Remote 500, got {other:?}"),
    }
    assert!(shown.contains("Failed to process request") && shown.contains("boom"), "{shown}");
}

#[tokio::test]
async fn status_400_method_not_found_names_the_method() {
    let response =
        WitResponse::error(CommunicationStatus::BadRequest, "Method not found on service, method name: Add", None);
    match answered_with(response).await.unwrap_err() {
        ClientError::MethodNotFound { method, message } => {
            assert_eq!(method, "Add");
            assert!(message.starts_with("Method not found"), "{message}");
        }
        other => panic!("expected MethodNotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn another_status_400_is_a_bad_request_not_a_missing_method() {
    let response = WitResponse::error(CommunicationStatus::BadRequest, "cannot decode parameter `a`", None);
    let err = answered_with(response).await.unwrap_err();
    match &err {
        ClientError::BadRequest { message, details: None } => {
            assert_eq!(message.as_deref(), Some("cannot decode parameter `a`"));
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
    assert_eq!(err.status(), Some(CommunicationStatus::BadRequest));
}

#[tokio::test]
async fn status_561_means_the_requests_token_was_rejected() {
    let response = WitResponse::error(CommunicationStatus::Unauthorized, "Unauthorized", None);
    let err = answered_with(response).await.unwrap_err();
    assert!(matches!(err, ClientError::RequestUnauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreadable_response_fails_only_its_call() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(add("1", "2")).await }
    });
    let (message, _) = server.request().await;
    server.reply(&message, vec![0xff, 0x01]).await;
    let err = within("call", call).await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    assert!(client.is_connected());
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_call_times_out_and_is_forgotten() {
    let timeout = Duration::from_secs(2);
    let (client, mut server) = connected(WitClientBuilder::new().with_request_timeout(timeout)).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(add("1", "2")).await }
    });
    let (late, _) = server.request().await;
    let err = within("call", call).await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Timeout { after } if after == timeout), "{err:?}");
    assert_eq!(client.pending_calls(), 0, "the timed-out call is still registered");
    // A late answer is dropped; the connection goes on.
    server.respond(&late, WitResponse::ok(Some(Bytes::from_static(b"3")))).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(add("2", "2")).await }
    });
    let (message, _) = server.request().await;
    server.respond(&message, WitResponse::ok(Some(Bytes::from_static(b"4")))).await;
    assert_eq!(within("call", call).await.unwrap().unwrap().as_deref(), Some(&b"4"[..]));
}

#[tokio::test]
async fn a_dropped_call_is_forgotten() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(add("1", "2")).await }
    });
    server.request().await;
    call.abort();
    assert!(within("abort", call).await.unwrap_err().is_cancelled());
    assert_eq!(client.pending_calls(), 0);
}
