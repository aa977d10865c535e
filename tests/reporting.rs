//! What is not returned is reported: quiet writes and failing outcome hooks
//! leave a `tracing` event.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{each_backend, fresh};
use earn::prelude::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }
}

/// Captures every event at DEBUG and above on this thread.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[derive(Debug, Clone, Model)]
#[model(table = "reporting_mail")]
struct Mail {
    #[model(primary_key, auto)]
    id: Option<i64>,
    to: String,
}

#[hooks]
impl Mail {
    #[after_commit]
    fn send(&self) -> Result<(), HookError> {
        Err(HookError::msg(format!("smtp refused {}", self.to)))
    }
}

#[tokio::test]
async fn quiet_writes_and_failed_outcome_hooks_are_reported() {
    each_backend(|db| async move {
        fresh::<Mail>(&db).await;
        let (captured, _guard) = capture();

        let mut mail = Mail {
            id: None,
            to: "ada@example.com".into(),
        };
        mail.save(&db).await.expect("the committed save succeeds");
        let text = captured.text();
        assert!(text.contains("ERROR"), "{text}");
        assert!(
            text.contains("Mail::send (after_commit) failed: smtp refused ada@example.com"),
            "{text}"
        );

        mail.save_quietly(&db).await.unwrap();
        mail.delete_quietly(&db).await.unwrap();
        let text = captured.text();
        assert!(
            text.contains("save_quietly: hooks skipped") && text.contains("model=\"Mail\""),
            "{text}"
        );
        assert!(text.contains("delete_quietly: hooks skipped"), "{text}");
    })
    .await;
}
