//! The `neurodiff` command-line tool.

mod bench;
mod cli;

use std::error::Error as _;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    // An interrupted run removes its unfinished output files.
    let installed = neurodiff::io::remove_partials_on_interrupt();
    if let Err(e) = installed.and_then(|()| cli::run(args)) {
        let message = e.to_string();
        eprintln!("error: {message}");
        let mut source = e.source();
        while let Some(s) = source {
            // Errors that carry a source often print it in their own message already.
            let cause = s.to_string();
            if !message.contains(&cause) {
                eprintln!("  caused by: {cause}");
            }
            source = s.source();
        }
        std::process::exit(1);
    }
}
