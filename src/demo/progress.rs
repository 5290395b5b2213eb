//! How the demo reports its steps as they happen: one line per step with the time since the
//! start (the leaf the shop and the scenario share with the final report).

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Prints one line per step with the time since the start.
pub(super) struct Progress {
    pub(super) started: Instant,
}

/// Width the demo's output keeps to.
const WIDTH: usize = 100;

impl Progress {
    /// `[  1.23 s] what`, wrapped at [`WIDTH`] columns with a hanging indent.
    pub(super) fn step(&self, what: impl Display) {
        let prefix = format!("[{:>6.2} s] ", self.started.elapsed().as_secs_f64());
        let indent = " ".repeat(prefix.len() + 2);
        let mut line = prefix;
        let mut words_on_line = 0;
        for word in what.to_string().split(' ') {
            if words_on_line > 0 && line.chars().count() + 1 + word.chars().count() > WIDTH {
                println!("{line}");
                line = indent.clone();
                words_on_line = 0;
            }
            if words_on_line > 0 {
                line.push(' ');
            }
            line.push_str(word);
            words_on_line += 1;
        }
        println!("{line}");
    }
}

pub(super) fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}
