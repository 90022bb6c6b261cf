//! Connectomes as edge lists: the same network as its dense matrix (both engines, with and
//! without sparse coupling and delays), clear errors naming the row, and a large edge list that
//! runs without ever becoming dense.

use std::fmt::Write as _;

use crate::common::*;
use neurodiff::backend::BackendKind;
use neurodiff::connectome::Connectome;
use neurodiff::network::NetworkConfig;
use neurodiff::problem::{simulate_collect, Engine, Problem, RunSpec};
use neurodiff::sparse::SparseMode;

/// 12 regions of the bundled HCP connectome, with lengths.
fn hcp12() -> Connectome {
    Connectome::load("hcp80", None)
        .unwrap()
        .subset(&(0..12).collect::<Vec<_>>())
}

/// The nonzero edges of `c` as CSV rows `source,target,weight,length`, in a scrambled order,
/// with a header, a comment, a blank line and a zero-weight edge that must be ignored.
fn csv_of(c: &Connectome) -> String {
    let n = c.n;
    let l = c.lengths.as_ref().unwrap();
    let mut rows: Vec<(usize, usize)> = (0..n * n)
        .filter(|&k| c.weights[k] != 0.0)
        .map(|k| (k / n, k % n))
        .collect();
    // Deterministic scramble: reverse, then interleave halves.
    rows.reverse();
    let (a, b) = rows.split_at(rows.len() / 2);
    let mixed: Vec<_> = b
        .iter()
        .zip(a)
        .flat_map(|(x, y)| [*x, *y])
        .chain(b.iter().skip(a.len()).copied())
        .collect();
    assert_eq!(mixed.len(), rows.len());
    let mut s = String::from("source,target,weight,length\n# HCP subset\n\n");
    for (i, j) in mixed {
        // Full precision: `{:?}` prints the shortest string that reads back exactly.
        writeln!(s, "{j},{i},{:?},{:?}", c.weights[i * n + j], l[i * n + j]).unwrap();
    }
    writeln!(s, "0,1,0.0,5.0").unwrap();
    s
}

#[test]
fn an_edge_list_is_the_same_network_as_its_matrix() {
    let dense = hcp12();
    let dir = tmpdir("edges-same");
    let path = dir.join("hcp12.edges.csv");
    std::fs::write(&path, csv_of(&dense)).unwrap();
    let el = Connectome::load(path.to_str().unwrap(), None).unwrap();
    assert!(el.is_edge_list() && el.weights.is_empty() && el.lengths.is_none());
    assert_eq!((el.n, el.nnz()), (dense.n, dense.nnz()));
    let back = el.to_dense().unwrap();
    assert_eq!(back.weights, dense.weights);
    assert_eq!(back.lengths, dense.lengths);
    assert_eq!(el.is_symmetric(), dense.is_symmetric());
    assert_eq!(el.row_sums(), dense.row_sums());

    // The same run on both, with every engine and coupling layout, with and without delays.
    for speed in [None, Some(4.0)] {
        for sparse in [SparseMode::On, SparseMode::Off] {
            for engine in [Engine::Fused, Engine::Tensor] {
                let run = |c: &Connectome| {
                    let p = Problem::builder("mpr", c.clone())
                        .network(NetworkConfig {
                            speed,
                            sparse,
                            ..NetworkConfig::new("mpr")
                        })
                        .param("G", 0.8)
                        .run(RunSpec {
                            dt: Some(0.01),
                            duration: 3.0,
                            noise_sigma: vec![0.01, 0.02],
                            sample_every: 10,
                            ..RunSpec::default()
                        })
                        .build()
                        .unwrap();
                    simulate_collect(&p, BackendKind::Ndarray, engine)
                        .unwrap()
                        .0
                };
                let (a, b) = (run(&dense), run(&el));
                assert_eq!(a, b, "speed {speed:?}, sparse {sparse:?}, {engine}");
            }
        }
    }

    // The same edges as a .npy array [edges, 4].
    let csr = el.csr();
    let lens = el.edge_lengths().unwrap();
    let mut data = Vec::new();
    for (k, (i, j)) in csr.pairs().enumerate() {
        data.extend([j as f64, i as f64, csr.weight[k], lens[k]]);
    }
    let npy = dir.join("hcp12.edges.npy");
    write_npy(&npy, &[csr.nnz(), 4], &data);
    let from_npy = Connectome::load(npy.to_str().unwrap(), None).unwrap();
    assert_eq!(from_npy.edges, el.edges);
    // `edges:` names an edge list whatever the file is called.
    let plain = dir.join("plain.csv");
    std::fs::copy(&path, &plain).unwrap();
    let c = Connectome::load(&format!("edges:{}", plain.display()), None).unwrap();
    assert_eq!(c.edges, el.edges);
}

#[test]
fn bad_edge_lists_are_refused_naming_the_row() {
    let dir = tmpdir("edges-bad");
    let cases: [(&str, &str); 6] = [
        (
            "0,1,0.5\n1,0,0.5\n0,1,0.25\n",
            "lines 1 and 3 both give the edge 0 → 1",
        ),
        (
            "0,1,0.5\n1.5,0,0.5\n",
            "line 2: source 1.5 is not a node index",
        ),
        ("0,1,0.5\n1,0,-2\n", "line 2: the weight is -2"),
        ("0,1,0.5\n1,0,x\n", "line 2: `x` is not a number"),
        (
            "0,1,0.5,3\n1,0,0.5\n",
            "line 2: 3 fields where the first row has 4",
        ),
        ("0,1\n", "line 1: 2 fields"),
    ];
    for (k, (text, want)) in cases.iter().enumerate() {
        let p = dir.join(format!("bad{k}.edges.csv"));
        std::fs::write(&p, text).unwrap();
        let e = Connectome::load(p.to_str().unwrap(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "case {k}: `{e}` lacks `{want}`");
        assert!(
            e.contains(&format!("bad{k}.edges.csv")),
            "names the file: {e}"
        );
    }
    // Lengths belong in the list, not in --lengths.
    let p = dir.join("ok.edges.csv");
    std::fs::write(&p, "0,1,0.5\n1,0,0.5\n").unwrap();
    let e = Connectome::load(p.to_str().unwrap(), Some(&p))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fourth column"), "{e}");
    // Delays without lengths name the fix.
    let c = Connectome::load(p.to_str().unwrap(), None).unwrap();
    let e = Problem::builder("mpr", c)
        .network(NetworkConfig {
            speed: Some(3.0),
            ..NetworkConfig::new("mpr")
        })
        .run(RunSpec {
            duration: 0.1,
            ..RunSpec::default()
        })
        .build()
        .and_then(|p| simulate_collect(&p, BackendKind::Ndarray, Engine::Fused))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fourth column of an edge list"), "{e}");
}

/// 30,000 regions with 10 inputs each: 300,000 edges (7 MB), where the dense matrix would take
/// 7.2 GB (and `to_dense` refuses anything over 2 GB, so a path that densified would fail here).
#[test]
fn a_large_edge_list_runs_without_becoming_dense() {
    use rand::{Rng, SeedableRng};
    let (n, k) = (30_000usize, 10usize);
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
    let mut data = Vec::with_capacity(n * k * 3);
    for i in 0..n {
        for j in rand::seq::index::sample(&mut rng, n - 1, k) {
            let j = if j >= i { j + 1 } else { j };
            data.extend([j as f64, i as f64, rng.random_range(0.01..0.2)]);
        }
    }
    let dir = tmpdir("edges-large");
    let path = dir.join("big.edges.npy");
    write_npy(&path, &[n * k, 3], &data);
    drop(data);
    let c = Connectome::load(path.to_str().unwrap(), None).unwrap();
    assert_eq!((c.n, c.nnz()), (n, n * k));
    assert!(c.weights.is_empty());
    let err = c.to_dense().unwrap_err().to_string();
    assert!(err.contains("sparse"), "{err}");
    let p = Problem::builder("mpr", c)
        .param("G", 0.5)
        .run(RunSpec {
            dt: Some(0.01),
            duration: 0.2,
            sample_every: 20,
            ..RunSpec::default()
        })
        .build()
        .unwrap();
    assert!(p.is_sparse());
    let (fused, shape, _) = simulate_collect(&p, BackendKind::Ndarray, Engine::Fused).unwrap();
    let (tensor, _, _) = simulate_collect(&p, BackendKind::Ndarray, Engine::Tensor).unwrap();
    assert_eq!(shape, [1, 1, 2, n]);
    assert!(fused.iter().all(|v| v.is_finite()));
    let d = rel_diff(&fused, &tensor);
    assert!(d < 1e-4, "fused vs tensor on 30,000 nodes: {d}");
}
