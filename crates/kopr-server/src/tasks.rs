//! Tasks the server runs in the background (snapshots, restores), listed on Kopia's
//! `/api/v1/tasks` with Kopia's fields (`id`, `startTime`, `endTime`, `kind`, `description`,
//! `status` RUNNING/SUCCESS/FAILED/CANCELED, `progressInfo`, `errorMessage`, `counters`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One counter of a task, as Kopia's `CounterValue`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Counter {
    /// The value.
    pub value: i64,
    /// `bytes` or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub units: String,
    /// `""`, `notice`, `warning` or `error`.
    pub level: String,
}

impl Counter {
    /// A plain count.
    pub fn count(v: u64) -> Counter {
        Counter {
            value: i64::try_from(v).unwrap_or(i64::MAX),
            units: String::new(),
            level: String::new(),
        }
    }
    /// A number of bytes.
    pub fn bytes(v: u64) -> Counter {
        Counter {
            units: "bytes".into(),
            ..Counter::count(v)
        }
    }
}

/// A task's state, as Kopia's `uitask.Info`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskInfo {
    /// Task id.
    pub id: String,
    /// When it started.
    #[serde(rename = "startTime")]
    pub start_time: DateTime<Utc>,
    /// When it ended.
    #[serde(rename = "endTime", skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// `Snapshot`, `Restore`, ...
    pub kind: String,
    /// What it does.
    pub description: String,
    /// RUNNING, SUCCESS, FAILED, CANCELING or CANCELED.
    pub status: String,
    /// One line of progress.
    #[serde(rename = "progressInfo")]
    pub progress_info: String,
    /// The error, when it failed.
    #[serde(rename = "errorMessage", skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    /// Named counters.
    pub counters: BTreeMap<String, Counter>,
    /// kopr: the snapshot it made, when it is a snapshot that finished.
    #[serde(rename = "snapshotID", skip_serializing_if = "String::is_empty")]
    pub snapshot_id: String,
}

/// A running task's handle: updates its state.
#[derive(Clone)]
pub struct TaskHandle {
    info: Arc<Mutex<TaskInfo>>,
    /// Set when the task is asked to stop.
    pub cancel: Arc<AtomicBool>,
}

impl TaskHandle {
    /// The task's id.
    pub fn id(&self) -> String {
        self.info.lock().map(|i| i.id.clone()).unwrap_or_default()
    }

    /// The task's state now.
    pub fn info(&self) -> Option<TaskInfo> {
        self.info.lock().ok().map(|i| i.clone())
    }

    /// Replaces the progress line and counters.
    pub fn progress(&self, line: String, counters: BTreeMap<String, Counter>) {
        if let Ok(mut i) = self.info.lock() {
            i.progress_info = line;
            i.counters = counters;
        }
    }

    /// Ends the task: SUCCESS with `Ok(snapshot id or "")`, FAILED with the error (CANCELED
    /// when it was canceled).
    pub fn finish(&self, result: Result<String, String>) {
        if let Ok(mut i) = self.info.lock() {
            i.end_time = Some(Utc::now());
            match result {
                Ok(id) => {
                    i.status = if self.cancel.load(Ordering::Relaxed) {
                        "CANCELED".into()
                    } else {
                        "SUCCESS".into()
                    };
                    i.snapshot_id = id;
                }
                Err(e) => {
                    i.status = "FAILED".into();
                    i.error_message = e;
                }
            }
        }
    }
}

/// A task's shared state and its cancel flag.
type Entry = (Arc<Mutex<TaskInfo>>, Arc<AtomicBool>);

/// Every task since the server started (at most [`MAX_TASKS`], oldest dropped first).
#[derive(Default)]
pub struct TaskManager {
    tasks: Mutex<Vec<Entry>>,
    next: Mutex<u64>,
}

/// Finished tasks kept for listing.
pub const MAX_TASKS: usize = 100;

impl TaskManager {
    /// Registers a new running task.
    pub fn start(&self, kind: &str, description: String) -> TaskHandle {
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            n.to_string()
        };
        let info = Arc::new(Mutex::new(TaskInfo {
            id,
            start_time: Utc::now(),
            end_time: None,
            kind: kind.into(),
            description,
            status: "RUNNING".into(),
            progress_info: String::new(),
            error_message: String::new(),
            counters: BTreeMap::new(),
            snapshot_id: String::new(),
        }));
        let cancel = Arc::new(AtomicBool::new(false));
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() >= MAX_TASKS {
            if let Some(pos) = tasks
                .iter()
                .position(|(t, _)| t.lock().map(|t| t.end_time.is_some()).unwrap_or(true))
            {
                tasks.remove(pos);
            }
        }
        tasks.push((info.clone(), cancel.clone()));
        TaskHandle { info, cancel }
    }

    /// Every task, newest first.
    pub fn list(&self) -> Vec<TaskInfo> {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<TaskInfo> = tasks
            .iter()
            .filter_map(|(t, _)| t.lock().ok().map(|t| t.clone()))
            .collect();
        out.reverse();
        out
    }

    /// One task.
    pub fn get(&self, id: &str) -> Option<TaskInfo> {
        self.list().into_iter().find(|t| t.id == id)
    }

    /// Asks a running task to stop; whether it was found.
    pub fn cancel(&self, id: &str) -> bool {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (t, c) in tasks.iter() {
            if let Ok(mut t) = t.lock() {
                if t.id == id {
                    if t.status == "RUNNING" {
                        t.status = "CANCELING".into();
                        c.store(true, Ordering::Relaxed);
                    }
                    return true;
                }
            }
        }
        false
    }

    /// The running task of `kind` whose description is `description`, if any.
    pub fn running(&self, kind: &str, description: &str) -> Option<TaskInfo> {
        self.list().into_iter().find(|t| {
            t.kind == kind
                && t.description == description
                && (t.status == "RUNNING" || t.status == "CANCELING")
        })
    }
}
