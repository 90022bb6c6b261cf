//! `neurodiff models`: the catalogue.

use clap::Args;
use neurodiff::coupling::CouplingKind;
use neurodiff::Result;

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Show only this model.
    name: Option<String>,
}

fn fmt_num(v: f64) -> String {
    if v == f64::INFINITY {
        "inf".into()
    } else if v == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{v}")
    }
}

pub fn run(args: ModelsArgs) -> Result<()> {
    let specs = match &args.name {
        Some(n) => vec![neurodiff::models::find(n)?],
        None => neurodiff::models::catalogue(),
    };
    for s in specs {
        println!("{} — {}", s.name, s.title);
        println!("  {}", s.citation);
        println!(
            "  time unit: {}   default dt: {} {}   typical G: {}",
            s.time_unit, s.default_dt, s.time_unit, s.coupling_strength
        );
        println!("  state variables:");
        println!(
            "    {:<10} {:<8} {:>10}  {:<22} meaning",
            "name", "unit", "initial", "typical range"
        );
        for v in s.state {
            println!(
                "    {:<10} {:<8} {:>10}  {:<22} {}",
                v.name,
                v.unit,
                fmt_num(v.initial),
                format!("[{}, {}]", fmt_num(v.range.0), fmt_num(v.range.1)),
                v.doc
            );
        }
        println!(
            "    (typical range: where --initial-state random draws from; not a bound on the \
             state)"
        );
        println!("  coupling inputs:");
        for c in s.coupling {
            println!(
                "    {:<10} from {:<6} {:<4} {}",
                c.name,
                s.state[c.var].name,
                if c.default_on { "on" } else { "off" },
                c.doc
            );
        }
        println!("  parameters:");
        println!(
            "    {:<10} {:>10} {:<8} {:<22} meaning",
            "name", "default", "unit", "bounds"
        );
        let coupling = CouplingKind::Linear.params();
        for p in s.params.iter().chain(coupling) {
            let default = if p.name == "G" {
                s.coupling_strength
            } else {
                p.default
            };
            println!(
                "    {:<10} {:>10} {:<8} {:<22} {}",
                p.name,
                fmt_num(default),
                p.unit,
                format!("[{}, {}]", fmt_num(p.lower), fmt_num(p.upper)),
                p.doc
            );
        }
        println!();
    }
    Ok(())
}
