//! 2,000 users' indexes behind a cap of 50 open: every user's search finds
//! what it found with every index open, and the process's open files and
//! memory maps stay bounded while all of them are searched in turn.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly where it stands"
)]

use pai_search::repo::ChunkRow;
use pai_search::text_index::{Filters, TextIndex};
use pai_search::vector_index::{DIMENSIONS, VectorIndexes};
use uuid::Uuid;

const USERS: usize = 2_000;
const OPEN_MAX: usize = 50;

/// A deterministic unit vector per seed (xorshift).
fn vector(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v: Vec<f32> = (0..DIMENSIONS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2_000) as f32 / 1_000.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// User `n`'s chunk `id`: a word of their own and one every user shares.
fn chunk(user_id: Uuid, n: usize, id: i64) -> ChunkRow {
    ChunkRow {
        id,
        user_id,
        source_kind: "document".into(),
        source_id: Uuid::from_u128(id as u128),
        ordinal: 0,
        title: "notes.pdf".into(),
        category: "generic".into(),
        page: 1,
        text: format!("ledger{n} shared invoice number {id}"),
        created_at: chrono::DateTime::from_timestamp_micros(1_764_000_000_000_000).expect("a time"),
    }
}

fn all_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Each user's hits: (BM25 ids, vector ids) for their own word and for the
/// word all share.
type Hits = Vec<(Vec<i64>, Vec<i64>, Vec<i64>)>;

fn search_all(
    text: &TextIndex,
    vectors: &VectorIndexes,
    users: &[Uuid],
    mut each: impl FnMut(),
) -> Hits {
    users
        .iter()
        .enumerate()
        .map(|(n, &user)| {
            let ids = |hits: Vec<(i64, f32)>| hits.into_iter().map(|h| h.0).collect::<Vec<_>>();
            let own = ids(text
                .search(user, &format!("ledger{n}"), 5, &Filters::default())
                .unwrap());
            let shared = ids(text
                .search(user, "invoice", 5, &Filters::default())
                .unwrap());
            let nearest = ids(vectors.search(user, &vector(n as u64), 5).unwrap());
            assert_eq!(text.chunks(user, &own).unwrap().len(), own.len());
            each();
            (own, shared, nearest)
        })
        .collect()
}

#[test]
fn two_thousand_users_behind_a_cap_of_fifty() {
    let dir = std::env::temp_dir().join(format!("pai-open-users-{}", Uuid::new_v4()));
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::new_v4()).collect();
    let fds_at_start = all_fds();

    // Every index built and kept open: the reference hits.
    let (expected, held_by_all) = {
        let text = TextIndex::open(&dir.join("text"), USERS).unwrap();
        let vectors = VectorIndexes::open(&dir.join("vectors"), USERS).unwrap();
        let rows: Vec<ChunkRow> = users
            .iter()
            .enumerate()
            .map(|(n, &user)| chunk(user, n, 1 + n as i64))
            .collect();
        text.add(&rows).unwrap();
        text.commit().unwrap();
        for (n, row) in rows.iter().enumerate() {
            vectors
                .add(row.user_id, &[(row.id, vector(n as u64).as_slice())])
                .unwrap();
        }
        vectors.save_dirty().unwrap();
        let hits = search_all(&text, &vectors, &users, || {});
        let held = pai_search::held_under(&dir);
        println!(
            "no cap, {USERS} users open: {} text and {} vector indexes, {} files and {} maps held under the index folder; {} fds in all (at start {fds_at_start})",
            text.open_users(),
            vectors.open_users(),
            held.0,
            held.1,
            all_fds(),
        );
        (hits, held)
    };
    for (n, (own, shared, nearest)) in expected.iter().enumerate() {
        let id = 1 + n as i64;
        assert_eq!((own, shared), (&vec![id], &vec![id]), "user {n}");
        assert_eq!(nearest.first(), Some(&id), "user {n}");
    }

    // A restart with a cap of 50: nothing open, then every user searched
    // in turn, twice (the second pass finds all closed again).
    let text = TextIndex::open(&dir.join("text"), OPEN_MAX).unwrap();
    let vectors = VectorIndexes::open(&dir.join("vectors"), OPEN_MAX).unwrap();
    assert_eq!((text.open_users(), vectors.open_users()), (0, 0));
    let fds_before = all_fds();
    let held_before = pai_search::held_under(&dir);
    let mut most = (0, 0, 0);
    let mut most_open = 0;
    let mut sample = || {
        let (files, maps) = pai_search::held_under(&dir);
        most = (most.0.max(files), most.1.max(maps), most.2.max(all_fds()));
        most_open = most_open.max(text.open_users().max(vectors.open_users()));
    };
    for _ in 0..2 {
        let found = search_all(&text, &vectors, &users, &mut sample);
        assert_eq!(found, expected);
    }
    let fds_after = all_fds();
    let held_after = pai_search::held_under(&dir);
    println!(
        "cap {OPEN_MAX}: at most {most_open} users open; under the index folder {held_before:?} (files, maps) before, at most ({}, {}) while searching {USERS} users twice, {held_after:?} after; fds in all {fds_before} before, at most {} while, {fds_after} after",
        most.0, most.1, most.2
    );
    assert!(most_open <= OPEN_MAX, "{most_open} open");
    // Files: tantivy maps its segments and usearch reads its file whole,
    // so neither keeps a descriptor; maps: a user's open BM25 index holds
    // a few, and at most the cap's worth are held.
    assert!(
        most.2 <= fds_before + 4,
        "{} fds, {fds_before} before",
        most.2
    );
    assert_eq!(most.0, 0);
    let maps_a_user = held_by_all.1.div_ceil(USERS);
    assert!(maps_a_user > 0);
    assert!(
        most.1 <= maps_a_user * OPEN_MAX,
        "{} maps, {maps_a_user} a user",
        most.1
    );

    // A write to a closed user opens, changes and keeps their index right.
    let (n, user) = (7, users[7]);
    text.delete_source(user, "document", Uuid::from_u128(1 + n as u128))
        .unwrap();
    text.add([&chunk(user, n, 9_000)]).unwrap();
    text.commit().unwrap();
    vectors.remove(user, &[1 + n as i64]).unwrap();
    vectors
        .add(user, &[(9_000, vector(n as u64).as_slice())])
        .unwrap();
    vectors.save_dirty().unwrap();
    for other in 0..200 {
        text.search(users[other + 100], "invoice", 5, &Filters::default())
            .unwrap();
        vectors.search(users[other + 100], &vector(0), 5).unwrap();
    }
    assert_eq!(
        text.search(user, &format!("ledger{n}"), 5, &Filters::default())
            .unwrap()
            .iter()
            .map(|h| h.0)
            .collect::<Vec<_>>(),
        [9_000]
    );
    assert_eq!(
        vectors.search(user, &vector(n as u64), 5).unwrap()[0].0,
        9_000
    );
    assert!(text.open_users() <= OPEN_MAX && vectors.open_users() <= OPEN_MAX);

    drop((text, vectors));
    assert_eq!(pai_search::held_under(&dir), (0, 0), "everything closed");
    std::fs::remove_dir_all(&dir).unwrap();
}
