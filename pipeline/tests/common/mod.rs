//! What the binary's tests share: the `chatcart` command as the test
//! builds it, without the settings or log filter of the environment the
//! tests run in.

use std::process::Command;

/// `chatcart`, with no `CHATCART__…` variable or `RUST_LOG` of the test's
/// own environment lending it settings.
pub fn clean_chatcart() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatcart"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CHATCART__") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}
