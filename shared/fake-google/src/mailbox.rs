//! One Gmail mailbox: messages, threads, labels and the history log.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::headers;

/// The first history id of a fresh mailbox (real ones are six digits or more).
const FIRST_HISTORY_ID: u64 = 100_000;

/// Dates for messages without a readable `Date` header start here
/// (2020-01-01T00:00:00Z), one minute apart, so the order stays stable.
const UNDATED_BASE_MILLIS: i64 = 1_577_836_800_000;

/// The bits of a mailbox's id prefix (20: ids of two mailboxes collide with
/// odds of one in a million).
const ID_PREFIX_MASK: u64 = 0xf_ffff;

/// The user label given to messages that carry a `List-Id` header.
pub const LISTS_LABEL_ID: &str = "Label_3721118265426419523";

/// A second user label, present but unused, as real accounts have.
pub const RECEIPTS_LABEL_ID: &str = "Label_956";

/// One stored message, with the fields Gmail reports for it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// 16 hex digits.
    pub id: String,
    /// The id of the first message of its thread.
    pub thread_id: String,
    pub label_ids: Vec<String>,
    /// The history id of the change that last touched the message.
    pub history_id: u64,
    /// Epoch milliseconds (from the `Date` header where readable).
    pub internal_date: i64,
    pub snippet: String,
    /// The exact RFC 5322 bytes.
    pub raw: Vec<u8>,
    /// `Message-ID`, `In-Reply-To` and `References` ids, for threading.
    message_id: Option<String>,
    parent_ids: Vec<String>,
}

/// A label as `labels.list` reports it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Label {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_list_visibility: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_list_visibility: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What a history record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    MessageAdded,
    MessageDeleted,
}

/// One entry of the history log.
#[derive(Debug, Clone)]
pub struct HistoryRecord {
    pub id: u64,
    pub kind: HistoryKind,
    pub message_id: String,
    pub thread_id: String,
    pub label_ids: Vec<String>,
}

/// A mailbox: the messages, labels and history of one Gmail account.
#[derive(Debug, Clone)]
pub struct Mailbox {
    messages: BTreeMap<String, StoredMessage>,
    labels: Vec<Label>,
    history: Vec<HistoryRecord>,
    history_id: u64,
    /// A `startHistoryId` below this answers 404 (expired history).
    history_floor: u64,
    /// Prefix mixed into ids so two mailboxes never share a message id.
    id_prefix: u64,
    next_sequence: u64,
    /// `Message-ID` → thread id, for placing replies.
    threads_by_message_id: HashMap<String, String>,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Mailbox {
    /// Returns an empty mailbox with Gmail's system labels and two user labels.
    pub fn new() -> Self {
        Self {
            messages: BTreeMap::new(),
            labels: default_labels(),
            history: Vec::new(),
            history_id: FIRST_HISTORY_ID,
            history_floor: FIRST_HISTORY_ID,
            id_prefix: 0x8c3a1,
            next_sequence: 1,
            threads_by_message_id: HashMap::new(),
        }
    }

    /// Returns a mailbox holding the given messages (name, RFC 5322 bytes),
    /// threaded by `Message-ID` / `In-Reply-To` / `References`, oldest first
    /// by `Date`. Loading writes no history: the history starts after it.
    pub fn from_messages(messages: Vec<(String, Vec<u8>)>) -> Self {
        let mut mailbox = Self::new();
        let mut parsed: Vec<Loaded> = messages
            .into_iter()
            .enumerate()
            .map(|(index, (_, raw))| {
                let fields = headers::header_fields(&raw);
                let date = headers::date_millis(&fields)
                    .unwrap_or(UNDATED_BASE_MILLIS + 60_000 * index as i64);
                Loaded {
                    date,
                    index,
                    raw,
                    fields,
                }
            })
            .collect();
        parsed.sort_by_key(|loaded| (loaded.date, loaded.index));
        let threads = thread_groups(
            &parsed
                .iter()
                .map(|loaded| loaded.fields.as_slice())
                .collect::<Vec<_>>(),
        );
        let mut thread_ids: HashMap<usize, String> = HashMap::new();
        for (position, loaded) in parsed.into_iter().enumerate() {
            let Loaded {
                date, raw, fields, ..
            } = loaded;
            let id = mailbox.next_message_id();
            let thread_id = thread_ids
                .entry(threads[position])
                .or_insert_with(|| id.clone())
                .clone();
            let labels = default_message_labels(&fields, position);
            mailbox.history_id += 1;
            mailbox.insert(StoredMessage::new(
                id,
                thread_id,
                labels,
                mailbox.history_id,
                date,
                raw,
                &fields,
            ));
        }
        mailbox.history_floor = mailbox.history_id;
        mailbox
    }

    /// Reads every `*.eml` (one message each) and `*.mbox` (split at its
    /// `From ` lines) in a folder, in name order, and returns the mailbox.
    pub fn from_eml_dir(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let mut entries: Vec<_> = std::fs::read_dir(path)?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|entry| entry.path())
            .collect();
        entries.sort();
        let mut messages = Vec::new();
        for path in entries {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".eml") {
                messages.push((name, std::fs::read(&path)?));
            } else if name.ends_with(".mbox") {
                let bytes = std::fs::read(&path)?;
                for (index, message) in split_mbox(&bytes).into_iter().enumerate() {
                    messages.push((format!("{name}#{index}"), message));
                }
            }
        }
        Ok(Self::from_messages(messages))
    }

    /// Sets the prefix that makes this mailbox's ids differ from others'.
    pub(crate) fn set_id_seed(&mut self, email: &str) {
        let digest = Sha256::digest(email.as_bytes());
        let prefix = u64::from_be_bytes([0, 0, 0, 0, 0, digest[0], digest[1], digest[2]]);
        let old_prefix = self.id_prefix;
        self.id_prefix = prefix & ID_PREFIX_MASK;
        if old_prefix == self.id_prefix {
            return;
        }
        // Re-key the loaded messages so the ids carry the new prefix.
        let rename = |id: &str| -> String {
            let value = u64::from_str_radix(id, 16).unwrap_or_default();
            format!(
                "{:016x}",
                (1 << 60) | (self.id_prefix << 40) | (value & ((1 << 40) - 1))
            )
        };
        let messages = std::mem::take(&mut self.messages);
        for (_, mut message) in messages {
            message.id = rename(&message.id);
            message.thread_id = rename(&message.thread_id);
            self.messages.insert(message.id.clone(), message);
        }
        for thread_id in self.threads_by_message_id.values_mut() {
            *thread_id = rename(thread_id);
        }
        for record in &mut self.history {
            record.message_id = rename(&record.message_id);
            record.thread_id = rename(&record.thread_id);
        }
    }

    /// Adds a message now (threaded onto an existing thread if it replies to
    /// one) and records `messagesAdded`. Returns the stored message.
    pub fn add(
        &mut self,
        raw: Vec<u8>,
        label_ids: Vec<String>,
        internal_date: Option<i64>,
    ) -> StoredMessage {
        let fields = headers::header_fields(&raw);
        let date = internal_date
            .or_else(|| headers::date_millis(&fields))
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let id = self.next_message_id();
        let parents: Vec<String> = ["In-Reply-To", "References"]
            .iter()
            .flat_map(|name| {
                headers::message_ids(headers::header(&fields, name).unwrap_or_default())
            })
            .collect();
        let thread_id = parents
            .iter()
            .find_map(|parent| self.threads_by_message_id.get(parent).cloned())
            .unwrap_or_else(|| id.clone());
        self.history_id += 1;
        let message = StoredMessage::new(
            id,
            thread_id,
            label_ids,
            self.history_id,
            date,
            raw,
            &fields,
        );
        self.history.push(HistoryRecord {
            id: self.history_id,
            kind: HistoryKind::MessageAdded,
            message_id: message.id.clone(),
            thread_id: message.thread_id.clone(),
            label_ids: message.label_ids.clone(),
        });
        self.insert(message.clone());
        message
    }

    /// Deletes a message and records `messagesDeleted`; returns whether it existed.
    pub fn delete(&mut self, id: &str) -> bool {
        let Some(message) = self.messages.remove(id) else {
            return false;
        };
        self.history_id += 1;
        self.history.push(HistoryRecord {
            id: self.history_id,
            kind: HistoryKind::MessageDeleted,
            message_id: message.id,
            thread_id: message.thread_id,
            label_ids: message.label_ids,
        });
        true
    }

    /// Forgets all history up to now: a later `history.list` from any older
    /// `startHistoryId` answers 404.
    pub fn expire_history(&mut self) {
        self.history.clear();
        self.history_floor = self.history_id;
    }

    /// Returns the current history id.
    pub fn history_id(&self) -> u64 {
        self.history_id
    }

    /// Returns the oldest `startHistoryId` still answered.
    pub fn history_floor(&self) -> u64 {
        self.history_floor
    }

    /// Returns the history records newer than `start`, oldest first.
    pub fn history_after(&self, start: u64) -> impl Iterator<Item = &HistoryRecord> {
        self.history.iter().filter(move |record| record.id > start)
    }

    /// Returns a message by id.
    pub fn get(&self, id: &str) -> Option<&StoredMessage> {
        self.messages.get(id)
    }

    /// Returns every message, newest first (by internal date, then id), as
    /// `messages.list` orders them.
    pub fn newest_first(&self) -> Vec<&StoredMessage> {
        let mut messages: Vec<&StoredMessage> = self.messages.values().collect();
        messages.sort_by(|a, b| (b.internal_date, &b.id).cmp(&(a.internal_date, &a.id)));
        messages
    }

    /// Returns the number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Returns whether the mailbox holds no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Returns the number of distinct threads.
    pub fn thread_count(&self) -> usize {
        let mut threads: Vec<&str> = self
            .messages
            .values()
            .map(|m| m.thread_id.as_str())
            .collect();
        threads.sort_unstable();
        threads.dedup();
        threads.len()
    }

    /// Returns the labels, system labels first.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    fn insert(&mut self, message: StoredMessage) {
        if let Some(message_id) = &message.message_id {
            self.threads_by_message_id
                .entry(message_id.clone())
                .or_insert_with(|| message.thread_id.clone());
        }
        for parent in &message.parent_ids {
            self.threads_by_message_id
                .entry(parent.clone())
                .or_insert_with(|| message.thread_id.clone());
        }
        self.messages.insert(message.id.clone(), message);
    }

    fn next_message_id(&mut self) -> String {
        // Real ids are 16 hex digits starting with 1 and grow with time. Here:
        // 1, the mailbox's 20-bit prefix, a 20-bit sequence, 20 scrambled bits.
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let value = (1 << 60)
            | (self.id_prefix << 40)
            | ((sequence & 0xf_ffff) << 20)
            | (sequence.wrapping_mul(0x9e37_79b9) & 0xf_ffff);
        format!("{value:016x}")
    }
}

impl StoredMessage {
    fn new(
        id: String,
        thread_id: String,
        label_ids: Vec<String>,
        history_id: u64,
        internal_date: i64,
        raw: Vec<u8>,
        fields: &[(String, String)],
    ) -> Self {
        let message_id = headers::header(fields, "Message-ID")
            .map(headers::message_ids)
            .and_then(|ids| ids.into_iter().next());
        let parent_ids = ["In-Reply-To", "References"]
            .iter()
            .flat_map(|name| {
                headers::message_ids(headers::header(fields, name).unwrap_or_default())
            })
            .collect();
        Self {
            snippet: headers::snippet(&raw, fields),
            id,
            thread_id,
            label_ids,
            history_id,
            internal_date,
            raw,
            message_id,
            parent_ids,
        }
    }
}

/// A message read for loading, before it gets its id.
struct Loaded {
    date: i64,
    /// The position in the input, to keep equal dates in input order.
    index: usize,
    raw: Vec<u8>,
    fields: Vec<(String, String)>,
}

/// Returns, per message, the index of its thread group: messages linked by
/// `Message-ID`, `In-Reply-To` or `References` share a group.
fn thread_groups(fields: &[&[(String, String)]]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..fields.len()).collect();
    fn find(parent: &mut [usize], mut node: usize) -> usize {
        while parent[node] != node {
            parent[node] = parent[parent[node]];
            node = parent[node];
        }
        node
    }
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (index, message_fields) in fields.iter().enumerate() {
        let ids = ["Message-ID", "In-Reply-To", "References"]
            .iter()
            .flat_map(|name| {
                headers::message_ids(headers::header(message_fields, name).unwrap_or_default())
            });
        for id in ids {
            match owner.get(&id) {
                Some(&other) => {
                    let (a, b) = (find(&mut parent, index), find(&mut parent, other));
                    // The older message's group wins, so the root stays the first.
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(id, index);
                }
            }
        }
    }
    (0..fields.len())
        .map(|index| find(&mut parent, index))
        .collect()
}

/// Splits an mbox file at its `From ` separator lines, dropping them.
fn split_mbox(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut previous_blank = true;
    for line in bytes.split_inclusive(|byte| *byte == b'\n') {
        if previous_blank && line.starts_with(b"From ") {
            if let Some(message) = current.take() {
                messages.push(message);
            }
            current = Some(Vec::new());
            previous_blank = false;
            continue;
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        current.get_or_insert_with(Vec::new).extend_from_slice(line);
    }
    messages.extend(current);
    messages
}

fn default_message_labels(fields: &[(String, String)], position: usize) -> Vec<String> {
    let mut labels = vec!["INBOX".to_owned()];
    if position.is_multiple_of(3) {
        labels.push("UNREAD".to_owned());
    }
    if headers::header(fields, "List-Id").is_some() {
        labels.push(LISTS_LABEL_ID.to_owned());
    }
    labels
}

fn default_labels() -> Vec<Label> {
    let system = |id: &str, visible: bool| Label {
        id: id.to_owned(),
        name: id.to_owned(),
        message_list_visibility: visible.then(|| "hide".to_owned()),
        label_list_visibility: visible.then(|| "labelHide".to_owned()),
        kind: "system".to_owned(),
    };
    let user = |id: &str, name: &str| Label {
        id: id.to_owned(),
        name: name.to_owned(),
        message_list_visibility: Some("show".to_owned()),
        label_list_visibility: Some("labelShow".to_owned()),
        kind: "user".to_owned(),
    };
    // Real accounts: CATEGORY_* and UNREAD omit both visibility fields.
    let mut labels: Vec<Label> = [
        ("CHAT", true),
        ("SENT", true),
        ("INBOX", true),
        ("IMPORTANT", true),
        ("TRASH", true),
        ("DRAFT", true),
        ("SPAM", true),
        ("CATEGORY_FORUMS", false),
        ("CATEGORY_UPDATES", false),
        ("CATEGORY_PERSONAL", false),
        ("CATEGORY_PROMOTIONS", false),
        ("CATEGORY_SOCIAL", false),
        ("STARRED", true),
        ("UNREAD", false),
    ]
    .into_iter()
    .map(|(id, visible)| system(id, visible))
    .collect();
    labels.push(user(LISTS_LABEL_ID, "Lists"));
    labels.push(user(RECEIPTS_LABEL_ID, "Receipts"));
    labels
}
