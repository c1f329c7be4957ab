//! The sweep's batch script: one job array whose task N trains trial N (its place in
//! `slurm/trials.json`) with `rudder sweep-task`, started by `srun` (so that
//! `--ntasks=2` gives a trial two ranks). The script forwards Slurm's warning
//! signal and SIGTERM to the trial, which checkpoints at its next step; after the
//! warning (a time limit or a preemption coming) the task requeues itself and its
//! next start resumes from that checkpoint.

use std::path::Path;

/// The signal sent before the end: `B:USR1@120`'s `USR1` and `120`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Warning {
    pub(crate) signal: String,
    pub(crate) seconds: u32,
}

/// Signals a trial checkpoints on (the binary's handlers).
const SIGNALS: [&str; 4] = ["USR1", "TERM", "INT", "HUP"];

impl Warning {
    /// `USR1@120` (or `SIGUSR1@120`); why not, on one line.
    pub(crate) fn parse(text: &str) -> Result<Warning, String> {
        let (sig, secs) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?} is not SIG@SECONDS (USR1@120)"))?;
        let sig = sig.trim().trim_start_matches("SIG").to_ascii_uppercase();
        if !SIGNALS.contains(&sig.as_str()) {
            return Err(format!(
                "signal {sig:?}: a trial checkpoints on USR1, TERM, INT or HUP"
            ));
        }
        let seconds: u32 = secs
            .trim()
            .parse()
            .ok()
            .filter(|s| (1..=65_535).contains(s))
            .ok_or_else(|| format!("{secs:?} is not a number of seconds from 1 to 65535"))?;
        Ok(Warning {
            signal: sig,
            seconds,
        })
    }
}

/// What the script is made of.
pub(crate) struct Script<'a> {
    /// The sweep's folder, absolute.
    pub(crate) sweep: &'a Path,
    /// The `rudder` binary the tasks run, absolute.
    pub(crate) rudder: &'a Path,
    /// Array tasks: `0-5`.
    pub(crate) tasks: usize,
    /// Tasks at once (`%N`).
    pub(crate) jobs: usize,
    /// `--slurm-arg`s, each an `#SBATCH` line.
    pub(crate) args: &'a [String],
    pub(crate) warning: &'a Warning,
    /// The marker's token.
    pub(crate) token: &'a str,
}

/// `s` quoted for bash.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Script<'_> {
    /// The script's text.
    pub(crate) fn text(&self) -> String {
        let sweep = self.sweep.display().to_string();
        let name = self
            .sweep
            .file_name()
            .map_or("sweep".into(), |n| n.to_string_lossy().to_string());
        let mut s = String::new();
        s.push_str("#!/bin/bash\n");
        s.push_str(&format!(
            "# rudder sweep {sweep} on Slurm, written by rudder: array task N trains trial N of\n# slurm/trials.json into its run folder; the coordinator (`rudder sweep`) submits\n# further tasks with sbatch --array=N this-script.\n"
        ));
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        s.push_str(&format!("#SBATCH --job-name=rudder-{name}\n"));
        s.push_str(&format!(
            "#SBATCH --array=0-{}%{}\n",
            self.tasks.saturating_sub(1),
            self.jobs.max(1)
        ));
        s.push_str(&format!("#SBATCH --output={sweep}/slurm/logs/%A_%a.out\n"));
        s.push_str("#SBATCH --open-mode=append\n");
        s.push_str(&format!(
            "#SBATCH --signal=B:{}@{}\n",
            self.warning.signal, self.warning.seconds
        ));
        s.push_str("#SBATCH --requeue\n");
        for a in self.args {
            s.push_str(&format!("#SBATCH {a}\n"));
        }
        s.push_str(&format!(
            r#"
sweep={sweep_q}
rudder={rudder_q}
signal=
child=
# A signal to this shell goes to the trial, which checkpoints at its next step.
forward() {{ signal=$1; [ -n "$child" ] && kill -"$1" "$child" 2>/dev/null; }}
trap 'forward {warn}' {warn}
trap 'forward TERM' TERM
srun --kill-on-bad-exit=1 "$rudder" sweep-task "$sweep" --task "$SLURM_ARRAY_TASK_ID" --token {token} &
child=$!
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
# 75: the trial checkpointed on the warning; run it again from there.
if [ "$status" -eq 75 ] && [ "$signal" = {warn} ]; then
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}" && exit 0
fi
exit "$status"
"#,
            sweep_q = quote(&sweep),
            rudder_q = quote(&self.rudder.display().to_string()),
            warn = self.warning.signal,
            token = quote(self.token),
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_is_a_signal_and_seconds() {
        assert_eq!(
            Warning::parse("SIGUSR1@90").unwrap(),
            Warning {
                signal: "USR1".into(),
                seconds: 90
            }
        );
        assert!(Warning::parse("KILL@10").unwrap_err().contains("KILL"));
        assert!(Warning::parse("USR1").unwrap_err().contains("SIG@SECONDS"));
        assert!(Warning::parse("USR1@0").is_err());
    }

    #[test]
    fn the_script_quotes_what_it_is_given() {
        let w = Warning::parse("USR1@120").unwrap();
        let text = Script {
            sweep: Path::new("/tmp/it's here"),
            rudder: Path::new("/opt/rudder"),
            tasks: 6,
            jobs: 2,
            args: &["--partition=gpu".into()],
            warning: &w,
            token: "abc",
        }
        .text();
        assert!(text.contains("#SBATCH --array=0-5%2\n"), "{text}");
        assert!(text.contains("#SBATCH --signal=B:USR1@120\n"));
        assert!(text.contains("#SBATCH --partition=gpu\n"));
        assert!(text.contains(r"sweep='/tmp/it'\''s here'"));
        assert!(text.contains("#SBATCH --job-name=rudder-it_s_here\n"));
    }
}
