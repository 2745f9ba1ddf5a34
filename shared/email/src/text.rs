//! The text that represents one email in search.

use crate::ParsedEmail;

/// "Subject / From / To / Cc / Date" then the body: the header lines let a
/// search for a sender, recipient or subject find the mail, and give answers
/// what they cite (subject, sender, date). To and Cc appear only when
/// present. The service chunks this string.
pub fn searchable_text(email: &ParsedEmail) -> String {
    let from = match &email.from {
        Some(a) => match &a.name {
            Some(name) if !name.is_empty() => format!("{name} <{}>", a.email),
            _ => a.email.clone(),
        },
        None => String::new(),
    };
    let date = email.date.map(|d| d.to_rfc3339()).unwrap_or_default();
    let mut out = format!("Subject: {}\nFrom: {from}\n", email.subject);
    // Recipients help "mail to the list" searches; lines only when present.
    for (label, list) in [("To", &email.to), ("Cc", &email.cc)] {
        if !list.is_empty() {
            let emails: Vec<&str> = list.iter().map(|a| a.email.as_str()).collect();
            out.push_str(&format!("{label}: {}\n", emails.join(", ")));
        }
    }
    out.push_str(&format!("Date: {date}\n\n"));
    out.push_str(&email.text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Address;

    #[test]
    fn header_lines_then_body() {
        let email = ParsedEmail {
            subject: "Hello".into(),
            from: Some(Address {
                name: Some("Ann".into()),
                email: "ann@example.com".into(),
            }),
            text: "body".into(),
            ..ParsedEmail::default()
        };
        assert_eq!(
            searchable_text(&email),
            "Subject: Hello\nFrom: Ann <ann@example.com>\nDate: \n\nbody"
        );
    }
}
