//! The model itself: shape, norm, meaning, and batching invariance.

use crate::{MINUTES, cosine, embedder};

#[test]
fn vectors_have_384_dimensions_and_unit_norm() {
    let embedder = embedder();
    assert_eq!(embedder.dimensions(), 384);
    let vectors = embedder
        .embed(&["What is the invoice total?", "", "naïve café ☕ 東京"])
        .unwrap();
    assert_eq!(vectors.len(), 3);
    for vector in vectors {
        assert_eq!(vector.len(), 384);
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
}

#[test]
fn related_texts_are_closer_than_unrelated_ones() {
    let vectors = embedder()
        .embed(&[
            "What is the invoice total?",
            "Total amount due: $4.11",
            "The Crazy Ones, October 14, 1998",
        ])
        .unwrap();
    let related = cosine(&vectors[0], &vectors[1]);
    let unrelated = cosine(&vectors[0], &vectors[2]);
    assert!(
        related > unrelated + 0.1,
        "related {related} vs unrelated {unrelated}"
    );
}

#[test]
fn a_batch_gives_the_same_vectors_as_one_by_one() {
    let embedder = embedder();
    let texts = [
        "Short.",
        "The quarterly report shows revenue grew eight percent year over year.",
        "Please find attached the invoice for services rendered in March.",
        "A much longer passage about the history of computing, from the \
         difference engine through vacuum tubes and transistors to the \
         integrated circuits that made personal computers possible.",
        "",
        "Meeting moved to Thursday.",
    ];
    let batched = embedder.embed(&texts).unwrap();
    for (text, batched) in texts.iter().zip(&batched) {
        let alone = embedder.embed(&[text]).unwrap();
        let similarity = cosine(&alone[0], batched);
        assert!(similarity >= 0.999, "{text:?}: cosine {similarity}");
    }
}

#[test]
fn padding_does_not_change_a_vector() {
    let embedder = embedder();
    let short = "Total amount due: $4.11";
    let long = "word ".repeat(200);
    let alone = embedder.embed(&[short]).unwrap();
    // The short text is padded to the long one's length in this batch.
    let padded = embedder.embed(&[short, long.as_str()]).unwrap();
    let similarity = cosine(&alone[0], &padded[0]);
    assert!(similarity >= 0.9999, "cosine {similarity}");
}

#[test]
fn long_texts_are_truncated_not_refused() {
    let embedder = embedder();
    let long = "invoice total ".repeat(5_000);
    let tokens = embedder.count_tokens(&[long.as_str()]).unwrap();
    assert_eq!(tokens, pai_inference::MAX_TOKENS);
    assert_eq!(embedder.embed(&[long.as_str()]).unwrap()[0].len(), 384);
}

#[test]
fn eight_bit_models_stay_within_cosine_0_99_of_the_f32_model() {
    use pai_inference::{Embedder, Precision};
    let reference = Embedder::load_with(&crate::model_path(), Precision::F32).unwrap();
    let mut texts: Vec<String> = vec![
        "What is the total amount due on the AWS invoice?".into(),
        "Amazon Glacier $2.22".into(),
        "x".into(),
    ];
    // Real prose from the email corpus, cut like ingest chunks.
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/email/dev/financial_discover_card_news_2002.eml");
    let raw = String::from_utf8_lossy(&std::fs::read(corpus).unwrap()).into_owned();
    let words: Vec<&str> = raw.split_whitespace().collect();
    texts.extend(words.chunks(120).map(|chunk| chunk.join(" ")));
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let exact = reference.embed(&texts).unwrap();
    // The int8 encoder runs its portable kernel on CPUs without AVX2.
    for precision in [Precision::Int8, Precision::Q8] {
        let quantized = Embedder::load_with(&crate::model_path(), precision)
            .unwrap()
            .embed(&texts)
            .unwrap();
        for ((text, q), f) in texts.iter().zip(&quantized).zip(&exact) {
            let similarity = cosine(q, f);
            assert!(
                similarity >= 0.99,
                "{precision:?}, {text:?}: cosine {similarity}"
            );
        }
    }
}

#[test]
fn the_portable_kernel_gives_the_detected_kernels_vectors() {
    use pai_inference::{Embedder, Kernel, Precision};
    let detected = Kernel::detect();
    let long = MINUTES.repeat(4);
    let texts = [
        "What is the total amount due on the AWS invoice?",
        "x",
        long.as_str(),
    ];
    let embed = |kernel| {
        Embedder::load_with_kernel(&crate::model_path(), Precision::Int8, kernel)
            .unwrap()
            .embed(&texts)
            .unwrap()
    };
    let (portable, fast) = (embed(Kernel::Portable), embed(detected));
    let similarities: Vec<f32> = portable
        .iter()
        .zip(&fast)
        .map(|(p, f)| cosine(p, f))
        .collect();
    assert!(
        similarities.iter().all(|&similarity| similarity >= 0.999),
        "{detected} kernel: cosines {similarities:?} to the portable one"
    );
}

#[test]
fn a_kernel_this_cpu_lacks_is_a_load_error() {
    use pai_inference::{Embedder, Kernel, Precision};
    let available = Kernel::available();
    let Some(missing) = Kernel::ALL.into_iter().find(|k| !available.contains(k)) else {
        eprintln!("this CPU runs every kernel: nothing to refuse");
        return;
    };
    let err = Embedder::load_with_kernel(&crate::model_path(), Precision::Int8, missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains(missing.name()), "{err}");
}
