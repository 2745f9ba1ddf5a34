//! Every engine against vectors computed once by an independent
//! implementation of the model: sentence-transformers on PyTorch
//! (`tests/fixtures/reference_embeddings.json`; its note and
//! `make_reference_embeddings.py` beside it say how they were made).

use std::path::Path;

use pai_inference::{Embedder, Kernel, Precision};

use crate::{cosine, model_path};

/// The lowest cosine any engine may reach on any reference sentence.
const MIN_COSINE: f32 = 0.99;

/// One sentence of the fixture: its text, the tokens sentence-transformers
/// fed the model ([CLS] and [SEP] included, after truncation) and its vector.
struct Reference {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference_embeddings.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let dimensions = fixture["dimensions"].as_u64().unwrap();
    let references: Vec<Reference> = fixture["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sentence| Reference {
            text: sentence["text"].as_str().unwrap().to_owned(),
            tokens: usize::try_from(sentence["tokens"].as_u64().unwrap()).unwrap(),
            vector: sentence["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect();
    assert!(
        (5..=8).contains(&references.len()),
        "{} sentences",
        references.len()
    );
    for reference in &references {
        assert_eq!(
            reference.vector.len() as u64,
            dimensions,
            "{:?}",
            reference.text
        );
    }
    references
}

/// Each engine pai ships (`EMBEDDING_PRECISION`): all three run on every
/// CPU (int8 on the fastest kernel the CPU has, down to the portable one),
/// so none is skipped. Every one must tokenize as sentence-transformers did
/// and reach [`MIN_COSINE`] on every sentence, embedded in one batch (the
/// candle engines pad it to its longest text).
#[test]
fn every_engine_matches_the_sentence_transformers_reference_vectors() {
    let references = references();
    let texts: Vec<&str> = references.iter().map(|r| r.text.as_str()).collect();
    let mut failures = Vec::new();
    for precision in [Precision::Int8, Precision::Q8, Precision::F32] {
        let engine = match precision {
            Precision::Int8 => format!("int8 ({:?} kernel)", Kernel::detect()),
            Precision::Q8 | Precision::F32 => format!("{precision:?}").to_lowercase(),
        };
        let embedder = Embedder::load_with(&model_path(), precision).unwrap();
        let vectors = embedder.embed(&texts).unwrap();
        for (reference, vector) in references.iter().zip(&vectors) {
            let text = &reference.text;
            let short: String = text.chars().take(48).collect();
            let tokens = embedder.count_tokens(&[text]).unwrap();
            let similarity = cosine(vector, &reference.vector);
            println!("{engine}: cosine {similarity:.5}, {tokens} tokens: {short:?}");
            if tokens != reference.tokens {
                failures.push(format!(
                    "{engine}, {short:?}: {tokens} tokens, sentence-transformers had {}",
                    reference.tokens
                ));
            }
            if similarity < MIN_COSINE {
                failures.push(format!(
                    "{engine}, {short:?}: cosine {similarity} < {MIN_COSINE}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
