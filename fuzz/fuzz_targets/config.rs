//! Configuration loading (`config::from_yaml_str`): any text, with `${VAR}` references
//! resolving to a few fixed values, must load or be refused with errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SECRET: &str = "Zq9-fuzz-secret-Qx";

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some(SECRET.into()),
        "PORT" => Some("8080".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match manifold::config::from_yaml_str(text, &env) {
        Ok(_) => {}
        Err(errors) => {
            // Errors are shown to operators: they must render, and never show a secret.
            let shown = errors.to_string();
            if !text.contains(SECRET) {
                assert!(
                    !shown.contains(SECRET),
                    "a ${{VAR}} value leaked into: {shown}"
                );
            }
        }
    }
});
