use pai_email::{Limits, classify, parse};

#[test]
#[ignore = "prints the corpus for tuning"]
fn dump() {
    for (entry, raw) in crate::corpus::all() {
        match parse(&raw, &Limits::default()) {
            Ok(e) => {
                let c = classify(&e, &[]);
                let t: String = e.text.chars().take(300).collect();
                println!(
                    "=== {} [{}] -> {} ({}) cc={:?}\nsubj={:?} from={:?} irt={:?} refs={} date={:?}\nhdr={:?}\natt={:?}\nwarn={:?}\n{}\n",
                    entry.file,
                    entry.category,
                    c.class,
                    c.reason(),
                    e.cc,
                    e.subject,
                    e.from,
                    e.in_reply_to,
                    e.references.len(),
                    e.date,
                    e.headers,
                    e.attachments
                        .iter()
                        .map(|a| (&a.filename, &a.content_type, a.size))
                        .collect::<Vec<_>>(),
                    e.warnings,
                    t.replace('\n', " | ")
                );
            }
            Err(err) => println!("=== {} FAILED {err}", entry.file),
        }
    }
}
