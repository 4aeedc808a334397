//! The SDK-generation story (issue 13): an API imported from an AWS export
//! (tests/fixtures/openapi/lambda-non-proxy-calc.yaml, a Lambda non-proxy integration in front
//! of a Powertools function) is served by `causeway standalone`, exported again with
//! `causeway export`, and a Python client generated from that export by the real
//! `openapi-python-client` (pinned in tests/requirements.txt) calls the running gateway: its
//! operation, parameters and typed responses (200 and 400) come from the export.
//!
//! Needs `python3` with `openapi-python-client` and `aws-lambda-powertools`
//! (`python3 -m pip install -r tests/requirements.txt`; `scripts/test.sh` does this). Without
//! them the test fails and says so.

use std::path::Path;
use std::process::Command;

use causeway_e2e::{
    CALC_HOST, bin, calc_function, import_calc, require_python_modules, standalone,
};
use serde_json::{Value, json};

/// Uses the generated package (`calc_client` under argv[1]) against the gateway at argv[2]
/// with Host argv[3], and prints what it got as JSON.
const USE_THE_SDK: &str = r#"
import json
import sys

sys.path.insert(0, sys.argv[1])
from calc_client import Client
from calc_client.api.default import get_sum
from calc_client.models import Error, Sum

client = Client(base_url=sys.argv[2], headers={"Host": sys.argv[3]})
ok = get_sum.sync_detailed(client=client, a="2", b="40")
bad = get_sum.sync_detailed(client=client, a="two", b="40")
assert isinstance(ok.parsed, Sum), (ok.status_code, ok.content)
assert isinstance(bad.parsed, Error), (bad.status_code, bad.content)
print(json.dumps({
    "ok": {
        "status": int(ok.status_code),
        "sum": ok.parsed.sum_,
        "requestId": ok.parsed.request_id,
        "op": ok.headers.get("x-calc-op"),
        "xRequestId": ok.headers.get("x-request-id"),
    },
    "bad": {
        "status": int(bad.status_code),
        "message": bad.parsed.message,
        "errorType": bad.headers.get("x-error-type"),
    },
}))
"#;

fn run(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| {
        panic!("{what}: {e} (python3 -m pip install -r tests/requirements.txt)")
    });
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_python_client_generated_from_the_export_calls_the_running_gateway() {
    require_python_modules(&["aws_lambda_powertools", "openapi_python_client", "httpx"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path();
    let (_function, function_port) = calc_function(dir.path(), logs).await;
    let crs = import_calc(dir.path(), function_port);
    let (gateway, traffic) = standalone(&crs, logs).await;

    // The export (no extensions: the plain document SDK generators read) keeps the
    // operation's name, its query parameters and its typed responses.
    let export = run(
        Command::new(bin("causeway"))
            .args(["export", "calc", "--stage", "prod", "-f"])
            .arg(&crs),
        "causeway export",
    );
    for expected in [
        "operationId: getSum",
        "name: a",
        "$ref: \"#/components/schemas/Sum\"",
        "\"400\":",
    ] {
        assert!(
            export.contains(expected),
            "{expected:?} not in the export:\n{export}"
        );
    }
    let document = dir.path().join("calc-openapi.yaml");
    std::fs::write(&document, &export).expect("write export");

    // The real generator, offline.
    let sdk = dir.path().join("sdk");
    run(
        Command::new("openapi-python-client")
            .args(["generate", "--meta", "none", "--path"])
            .arg(&document)
            .arg("--output-path")
            .arg(sdk.join("calc_client")),
        "openapi-python-client generate",
    );
    assert!(Path::new(&sdk.join("calc_client/api/default/get_sum.py")).exists());

    // The generated client calls the gateway: a 200 parsed into `Sum`, a 400 (the function's
    // error, selected by its message) parsed into `Error`, headers from the integration
    // responses.
    let script = dir.path().join("use_the_sdk.py");
    std::fs::write(&script, USE_THE_SDK).expect("write script");
    let printed = run(
        Command::new("python3")
            .arg("-B")
            .arg(&script)
            .arg(&sdk)
            .arg(format!("http://{traffic}/prod"))
            .arg(CALC_HOST),
        "the generated client",
    );
    let got: Value = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("{e}: {printed}\n{}", gateway.stderr()));
    let request_id = got["ok"]["xRequestId"].clone();
    assert!(request_id.is_string(), "{got}");
    assert_eq!(
        got,
        json!({
            "ok": {"status": 200, "sum": 42, "requestId": request_id, "op": "sum", "xRequestId": request_id},
            "bad": {
                "status": 400,
                "message": "Invalid input: a must be an integer, not \"two\"",
                "errorType": "InvalidInput",
            },
        })
    );
    drop(gateway);
}
