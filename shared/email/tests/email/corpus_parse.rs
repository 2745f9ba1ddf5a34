//! Every corpus message parses; facts and threads come through.

use std::collections::HashMap;

use pai_email::{Limits, ParsedEmail, parse, searchable_text};

fn parsed() -> Vec<(crate::corpus::Entry, ParsedEmail)> {
    crate::corpus::all()
        .into_iter()
        .map(|(entry, raw)| {
            let email =
                parse(&raw, &Limits::default()).unwrap_or_else(|e| panic!("{}: {e}", entry.file));
            (entry, email)
        })
        .collect()
}

#[test]
fn every_message_parses_with_a_subject_or_text() {
    let all = parsed();
    assert_eq!(all.len(), 77 + 21, "77 .eml files and 21 mbox messages");
    for (entry, email) in &all {
        assert!(
            !email.subject.is_empty() || !email.text.is_empty(),
            "{} has neither subject nor text",
            entry.file
        );
    }
}

#[test]
fn facts_appear_in_the_searchable_text() {
    let all = parsed();
    let mut missing = Vec::new();
    let squash = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    // Text inside PDFs is extracted downstream (pai-extract), not here.
    let facts = crate::corpus::facts().into_iter().filter(|(_, q, _)| {
        !q.contains("inside the attached PDF") && !q.contains("title of the attached PDF")
    });
    for (file, question, answer) in facts {
        let haystacks: Vec<String> = all
            .iter()
            .filter(|(e, _)| e.file == file)
            .map(|(_, email)| {
                let names: Vec<&str> = email
                    .attachments
                    .iter()
                    .map(|a| a.filename.as_str())
                    .collect();
                squash(&format!("{}\n{}", searchable_text(email), names.join("\n")))
            })
            .collect();
        assert!(!haystacks.is_empty(), "{file} not in the corpus");
        if !haystacks.iter().any(|h| h.contains(&squash(&answer))) {
            missing.push(format!("{file}: {question} => {answer}"));
        }
    }
    assert!(missing.is_empty(), "facts not found: {missing:#?}");
}

#[test]
fn replies_link_to_their_parents_in_the_same_thread() {
    let all = parsed();
    let thread_of: HashMap<&str, &str> = all
        .iter()
        .filter_map(|(e, m)| Some((m.message_id.as_deref()?, e.thread.as_str())))
        .collect();
    let mut linked: HashMap<&str, usize> = HashMap::new();
    for (entry, email) in &all {
        if entry.thread.is_empty() {
            continue;
        }
        let parents = email.in_reply_to.iter().chain(&email.references);
        for parent in parents {
            if let Some(thread) = thread_of.get(parent.as_str()) {
                assert_eq!(
                    *thread, entry.thread,
                    "{} replies to a message of another thread",
                    entry.file
                );
                *linked.entry(entry.thread.as_str()).or_default() += 1;
            }
        }
    }
    // Every thread with two or more messages in the corpus has its replies
    // linked to a parent that is also in the corpus.
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for (entry, _) in &all {
        if !entry.thread.is_empty() {
            *sizes.entry(entry.thread.as_str()).or_default() += 1;
        }
    }
    for (thread, size) in sizes {
        if size >= 2 {
            assert!(
                linked.get(thread).copied().unwrap_or(0) > 0,
                "{thread}: no reply links"
            );
        }
    }
}

#[test]
fn the_mbox_thread_hangs_together() {
    let all: Vec<ParsedEmail> = parsed()
        .into_iter()
        .filter(|(e, _)| e.file.ends_with(".mbox"))
        .map(|(_, m)| m)
        .collect();
    let ids: Vec<&str> = all.iter().filter_map(|m| m.message_id.as_deref()).collect();
    assert_eq!(ids.len(), 21);
    // All but the thread starter reply to another message of the mbox.
    let linked = all
        .iter()
        .filter(|m| m.in_reply_to.as_deref().is_some_and(|p| ids.contains(&p)))
        .count();
    assert_eq!(linked, 20);
}

#[test]
fn html_only_mail_gives_readable_text() {
    let raw = crate::corpus::messages("dev/newsletter_big5_html_2001.eml").remove(0);
    let email = parse(&raw, &Limits::default()).expect("parses");
    assert!(email.headers.html_only);
    assert!(email.text.contains("公元2001年06月17日"), "{}", email.text);
    for tag in ["<html", "<td", "<br", "<font", "&nbsp;", "</"] {
        assert!(!email.text.to_lowercase().contains(tag), "{tag} in text");
    }
}

#[test]
fn a_pdf_attachment_keeps_its_type_and_bytes() {
    use base64::Engine;
    let raw = crate::corpus::messages("dev/spam_sa_gtube_pdf_attachment.eml").remove(0);
    let email = parse(&raw, &Limits::default()).expect("parses");
    let pdf = email
        .attachments
        .iter()
        .find(|a| a.filename == "gtube.pdf")
        .expect("gtube.pdf");
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.data.starts_with(b"%PDF"));
    assert_eq!(pdf.size, pdf.data.len());
    // The same bytes as an independent base64 decode of the part.
    let text = String::from_utf8_lossy(&raw);
    let start = text.find("gtube.pdf").expect("part header");
    let body_start = start
        + text[start..]
            .find("\n\n")
            .or_else(|| text[start..].find("\r\n\r\n"))
            .expect("part body");
    let encoded: String = text[body_start..]
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && !l.starts_with("--"))
        .collect();
    let expected = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    assert_eq!(pdf.data, expected);
}
