//! Soft assertions for tests that walk a long list of cases.
//!
//! A table-driven test that panics at its first bad case hides every later
//! one; [`Checks`] records each failure with the request that caused it and
//! panics once, at [`Checks::finish`], with the whole list. That list is what
//! goes into a bug report.

use serde_json::Value;

use crate::resp::Resp;

/// Collected failures of one test.
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Records a failure unless `ok`.
    pub fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(msg());
        }
    }

    /// Expects `status` with a JSON error of `code`; returns the `error`
    /// object when it matched.
    pub fn error(&mut self, what: &str, r: &Resp, status: u16, code: &str) -> Option<Value> {
        self.error_in(what, r, status, &[code])
    }

    /// Expects `status` with a JSON error whose code is one of `codes` (any
    /// code when `codes` is empty).
    pub fn error_in(&mut self, what: &str, r: &Resp, status: u16, codes: &[&str]) -> Option<Value> {
        let err = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v.get("error").cloned());
        let code = err
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str);
        let message_ok = err
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty());
        let code_ok = code.is_some_and(|c| codes.is_empty() || codes.contains(&c));
        if r.status == status && code_ok && message_ok {
            err
        } else {
            let want = if codes.is_empty() {
                "any code".to_string()
            } else {
                codes.join(" or ")
            };
            self.failures.push(format!(
                "{what}: expected {status} with a JSON error ({want}), got {}",
                r.describe()
            ));
            None
        }
    }

    /// Expects `detail` in an error object to equal `want`.
    pub fn detail(&mut self, what: &str, err: &Option<Value>, r: &Resp, detail: &str, want: Value) {
        if let Some(e) = err {
            if e.get(detail) != Some(&want) {
                self.failures.push(format!(
                    "{what}: expected error detail {detail:?} = {want}, got {}",
                    r.describe()
                ));
            }
        }
    }

    /// How many failures so far.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    /// Panics listing every failure, if any.
    #[track_caller]
    pub fn finish(mut self) {
        let failures = std::mem::take(&mut self.failures);
        if !failures.is_empty() {
            panic!(
                "{} check(s) failed:\n  - {}",
                failures.len(),
                failures.join("\n  - ")
            );
        }
    }
}

impl Drop for Checks {
    /// A test that panics for another reason before `finish` would lose the
    /// list; print it then.
    fn drop(&mut self) {
        if std::thread::panicking() && !self.failures.is_empty() {
            eprintln!(
                "{} soft check(s) had failed before the panic:\n  - {}",
                self.failures.len(),
                self.failures.join("\n  - ")
            );
        }
    }
}
