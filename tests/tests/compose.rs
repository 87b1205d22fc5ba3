//! `docker/compose.yml` cannot ship a configuration that does not load:
//! every chatcart service's environment, read from the YAML (anchors and
//! merge keys resolved by PyYAML, the files it mounts found on this
//! machine), passes `chatcart config check`; every long-running one checks
//! its health with `chatcart health` on the port it serves, and none
//! restarts without end. There is no Docker engine here, so this is how
//! the compose file is checked.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use chatcart_tests as t;

#[derive(Debug, serde::Deserialize)]
struct Service {
    env: BTreeMap<String, String>,
    restart: String,
    healthcheck: Vec<String>,
}

#[test]
fn every_compose_service_loads_its_configuration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var("CHATCART_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(root.join("tests/compose/services.py"))
        .arg(root.join("docker/compose.yml"))
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "reading docker/compose.yml failed (PyYAML: `bash tests/services.sh start` installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services: BTreeMap<String, Service> =
        serde_json::from_slice(&out.stdout).expect("the services as JSON");
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    for expected in [
        "topics",
        "intent",
        "coupon",
        "fulfillment",
        "reply",
        "analytics",
    ] {
        assert!(names.contains(&expected), "no `{expected}` in {names:?}");
    }
    for (name, service) in &services {
        let env = &service.env;
        if name == "topics" {
            assert_eq!(service.restart, "no", "the one-off");
        } else {
            let port = env
                .get("CHATCART__RUNTIME__HEALTH_LISTEN")
                .and_then(|l| l.rsplit(':').next())
                .unwrap_or_else(|| panic!("{name} serves no health endpoint"));
            let check = service.healthcheck.join(" ");
            assert!(
                check.starts_with("CMD chatcart health --url")
                    && check.contains(&format!(":{port}/health")),
                "{name}: healthcheck `{check}`"
            );
            assert!(
                service.restart.starts_with("on-failure:"),
                "{name}: restart `{}` may loop for ever",
                service.restart
            );
        }
        let mut check = Command::new(t::chatcart_bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("CHATCART__") {
                check.env_remove(k);
            }
        }
        let out = check
            .args(["config", "check"])
            .envs(env)
            .output()
            .expect("running chatcart config check");
        assert!(
            out.status.success(),
            "service `{name}` does not load its configuration: {}\nenvironment: {env:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        if let Some(pw) = env.get("CHATCART__CLICKHOUSE__PASSWORD") {
            assert!(
                !shown.contains(&format!("password = \"{pw}\"")),
                "{name}: password shown:\n{shown}"
            );
            assert!(shown.contains("password = \"<redacted>\""), "{shown}");
        }
    }
    // The analytics service writes to the compose ClickHouse.
    assert_eq!(
        services["analytics"]
            .env
            .get("CHATCART__CLICKHOUSE__URL")
            .map(String::as_str),
        Some("http://clickhouse:8123")
    );
}
