//! Malformed and hostile input: stored or skipped with a recorded reason.

use pai_email::{Limits, ParseError, classify, parse, searchable_text};

#[test]
fn empty_input_and_no_headers_fail_with_a_reason() {
    let limits = Limits::default();
    assert_eq!(parse(b"", &limits), Err(ParseError::Empty));
    let err = parse(b"\r\n\r\njust a body, no header fields\r\n", &limits).expect_err("no headers");
    assert!(!err.to_string().is_empty());
}

#[test]
fn unknown_charset_is_decoded_lossily_with_a_warning() {
    let raw = b"From: a@example.com\r\nSubject: =?x-foo?Q?hi?= there\r\n\
        Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=x-foo\r\n\r\nplain words survive\r\n";
    let email = parse(raw, &Limits::default()).expect("parses");
    assert!(email.text.contains("plain words survive"));
    assert!(
        email
            .warnings
            .iter()
            .any(|w| w.contains("unknown charset x-foo")),
        "{:?}",
        email.warnings
    );
}

#[test]
fn truncated_boundary_keeps_the_body() {
    let raw = b"From: a@example.com\r\nSubject: cut\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n\
        --XYZ\r\nContent-Type: text/plain\r\n\r\nthe body before the cut\r\n\
        --XYZ\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK";
    let email = parse(raw, &Limits::default()).expect("parses");
    assert!(
        email.text.contains("the body before the cut"),
        "{}",
        email.text
    );
    assert_eq!(email.subject, "cut");
}

#[test]
fn missing_headers_are_warnings_not_errors() {
    let raw = b"Subject: only a subject\r\n\r\nbody\r\n";
    let email = parse(raw, &Limits::default()).expect("parses");
    assert!(email.from.is_none() && email.date.is_none() && email.message_id.is_none());
    assert!(email.warnings.iter().any(|w| w.contains("no From")));
    assert!(email.warnings.iter().any(|w| w.contains("no valid Date")));
    assert_eq!(email.text, "body");
}

fn with_attachment(size: usize) -> Vec<u8> {
    use base64::Engine;
    let data = vec![b'A'; size];
    let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
    let mut raw = b"From: a@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
        --B\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n\
        --B\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\n\
        Content-Disposition: attachment; filename=\"big.bin\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    for line in encoded.as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--B--\r\n");
    raw
}

#[test]
fn a_21_mib_attachment_is_skipped_with_a_reason_and_the_body_kept() {
    let email = parse(&with_attachment(21 * 1024 * 1024), &Limits::default()).expect("parses");
    assert_eq!(email.text, "see the attachment");
    assert!(email.attachments.is_empty());
    assert_eq!(email.skipped_attachments.len(), 1);
    let skipped = &email.skipped_attachments[0];
    assert_eq!(skipped.filename, "big.bin");
    assert!(skipped.reason.contains("limit"), "{}", skipped.reason);
}

#[test]
fn an_attachment_under_the_limit_is_kept() {
    let email = parse(&with_attachment(1000), &Limits::default()).expect("parses");
    assert_eq!(email.attachments.len(), 1);
    assert_eq!(email.attachments[0].size, 1000);
    assert!(email.attachments[0].data.iter().all(|b| *b == b'A'));
}

#[test]
fn long_text_is_truncated_with_a_warning() {
    let mut raw = b"From: a@example.com\r\nSubject: long\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 5000));
    let limits = Limits {
        max_text_bytes: 1000,
        ..Limits::default()
    };
    let email = parse(&raw, &limits).expect("parses");
    assert_eq!(email.text.len(), 1000);
    assert!(email.warnings.iter().any(|w| w.contains("truncated")));
}

#[test]
fn html_only_mail_drops_scripts_and_styles() {
    let raw = b"From: a@example.com\r\nSubject: html\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/html; charset=utf-8\r\n\r\n\
        <html><head><style>.x{color:red}</style><script>var s = 1;</script></head>\
        <body><h1>Big&nbsp;news</h1><p>Caf&eacute; opens <b>Monday</b></p></body></html>\r\n";
    let email = parse(raw, &Limits::default()).expect("parses");
    assert!(email.headers.html_only);
    assert!(email.text.contains("Café opens"), "{}", email.text);
    assert!(email.text.contains("Monday"));
    for junk in ["<", "color:red", "var s", "&nbsp;", "&eacute;"] {
        assert!(!email.text.contains(junk), "{junk} in {}", email.text);
    }
    // Classification and search text work on whatever came out.
    let _ = classify(&email, &[]);
    assert!(searchable_text(&email).starts_with("Subject: html\n"));
}
