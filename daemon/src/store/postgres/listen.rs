//! A dedicated connection that LISTENs for job ends announced by every
//! node (this one included) and wakes the lookups waiting for them, so a
//! wait on one node learns of a job that ended on another without polling
//! the table.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::CHANNEL;
use crate::store::waiters::Waiters;

/// Pause before reconnecting after the connection was lost.
const RECONNECT: Duration = Duration::from_secs(1);

/// Listens until aborted, reconnecting whenever the connection is lost.
pub async fn run(config: tokio_postgres::Config, waiters: Arc<Waiters>) {
    loop {
        if let Ok((client, mut connection)) = config.connect(NoTls).await {
            let (tx, mut rx) = mpsc::unbounded_channel();
            // The connection delivers notifications only while polled.
            let drive = tokio::spawn(async move {
                while let Some(Ok(msg)) =
                    std::future::poll_fn(|cx| connection.poll_message(cx)).await
                {
                    if let AsyncMessage::Notification(n) = msg {
                        if tx.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_ok()
            {
                // Ends announced while nobody listened are lost: whoever
                // waits reads its job again.
                waiters.wake_all();
                while let Some(payload) = rx.recv().await {
                    waiters.wake(payload.split(','));
                }
            }
            drive.abort();
            drop(client);
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
