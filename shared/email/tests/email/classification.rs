//! Classification of the corpus against the manifest's `category` column.

use pai_email::{Classification, Limits, classify, parse};

/// The share of corpus messages whose class matches the manifest. Measured
/// at 0.959 (94 of 98); the threshold leaves a little room for rule edits.
const MIN_ACCURACY: f64 = 0.93;

#[test]
fn corpus_accuracy_and_confusion_matrix() {
    let mut matrix = [[0usize; 6]; 6];
    let index = |c: Classification| {
        Classification::ALL
            .iter()
            .position(|x| *x == c)
            .unwrap_or(0)
    };
    let mut wrong = Vec::new();
    for (entry, raw) in crate::corpus::all() {
        let expected: Classification = entry.category.parse().expect("manifest category");
        let Ok(email) = parse(&raw, &Limits::default()) else {
            panic!("{} does not parse", entry.file);
        };
        let result = classify(&email, &[]);
        assert!(!result.reason().is_empty());
        matrix[index(expected)][index(result.class)] += 1;
        if result.class != expected {
            wrong.push(format!(
                "{}: expected {expected}, got {} ({})",
                entry.file,
                result.class,
                result.reason()
            ));
        }
    }
    let total: usize = matrix.iter().flatten().sum();
    let correct: usize = (0..6).map(|i| matrix[i][i]).sum();
    let accuracy = correct as f64 / total as f64;
    println!(
        "expected \\ got  {}",
        Classification::ALL
            .map(|c| format!("{:>13}", c.as_str()))
            .join("")
    );
    for (i, row) in matrix.iter().enumerate() {
        println!(
            "{:>14} {}",
            Classification::ALL[i].as_str(),
            row.map(|n| format!("{n:>12}")).join("")
        );
    }
    println!("accuracy {correct}/{total} = {accuracy:.3}");
    for line in &wrong {
        println!("  {line}");
    }
    assert!(
        accuracy >= MIN_ACCURACY,
        "accuracy {accuracy:.3} under {MIN_ACCURACY}: {wrong:#?}"
    );
}
