//! What the person sees in their terminal: plain words, no internal detail.

use crate::domain::session::{AttemptOutcome, Closed};
use crate::domain::text::for_terminal;

/// Text supplied through the API (banner, message) as a paragraph of the terminal output.
pub fn block(text: &str) -> String {
    let text = for_terminal(text.trim_end());
    if text.is_empty() {
        text
    } else {
        format!("{text}\r\n\r\n")
    }
}

/// The result shown after a key was proven and the session verified.
pub fn verified(fingerprint: &str) -> String {
    for_terminal(&format!(
        "Verified: you proved that you hold the private key\n  {fingerprint}\n\
         You can close this window.\n"
    ))
}

/// The question of a `mustConfirm` session.
pub fn confirm_prompt(fingerprint: &str) -> String {
    for_terminal(&format!(
        "You proved that you hold the private key\n  {fingerprint}\n\
         Confirm this verification? [y/N] "
    ))
}

/// The result when the person did not confirm.
pub fn not_confirmed(timed_out: bool, report: &FailureReport) -> String {
    let mut text = String::from(if timed_out {
        "\nNo answer in time: not verified.\n"
    } else {
        "\nNot confirmed: not verified.\n"
    });
    text.push_str(&attempts_line(report));
    for_terminal(&text)
}

fn attempts_line(report: &FailureReport) -> String {
    match report.attempt {
        Some(AttemptOutcome::Counted { failed_attempts }) => {
            format!(
                "\nThis was attempt {failed_attempts} of {}.\n",
                report.max_attempts
            )
        }
        Some(AttemptOutcome::CountedAndFailed { .. }) => {
            "\nThat was the last attempt allowed: this verification has failed.\n".to_owned()
        }
        Some(AttemptOutcome::NotCounted) | None => String::new(),
    }
}

/// What the person learns about the keys of a connection that did not verify.
#[derive(Debug, Clone, Default)]
pub struct FailureReport {
    /// SHA256 fingerprints of every key the client offered, in order.
    pub offered: Vec<String>,
    /// Fingerprints of listed keys the client offered but never signed with.
    pub unsigned_matches: Vec<String>,
    /// With `matchAllKeys`: how many listed keys were proven, of how many.
    pub proven_of_required: Option<(usize, usize)>,
    pub attempt: Option<AttemptOutcome>,
    pub max_attempts: i32,
    pub ssh_command: String,
}

/// The result shown when no offered key proved the session.
pub fn not_verified(report: &FailureReport) -> String {
    let mut text = String::from("Not verified: ");
    if let Some((proven, required)) = report.proven_of_required.filter(|(p, _)| *p > 0) {
        text.push_str(&format!(
            "this session needs all {required} listed keys proven in one connection; \
             your client proved {proven}.\n"
        ));
    } else if report.offered.is_empty() {
        text.push_str("your SSH client offered no public key.\n");
    } else if !report.unsigned_matches.is_empty() {
        text.push_str("your SSH client offered a requested key but did not sign with it.\n");
        text.push_str("Is the private key available to the client (not only the .pub file)?\n");
    } else {
        text.push_str("none of the keys your SSH client offered is one this session asks for.\n");
    }

    if !report.offered.is_empty() {
        text.push_str("\nKeys offered:\n");
        for fingerprint in &report.offered {
            text.push_str(&format!("  {fingerprint}\n"));
        }
    }
    let hint = report
        .ssh_command
        .replacen("ssh ", "ssh -i <key file> -o IdentitiesOnly=yes ", 1);
    text.push_str(&format!("\nTo offer one specific key, run:\n  {hint}\n"));

    text.push_str(&attempts_line(report));
    for_terminal(&text)
}

/// Why a connection was refused, shown before the client gives up.
pub fn refused(reason: Refusal) -> String {
    let text = match reason {
        Refusal::Unknown => {
            "There is no verification session for this user name. Check the command you were given."
        }
        Refusal::Closed(closed) => closed.explain(),
        Refusal::Unavailable => "The verification service is unavailable. Try again shortly.",
    };
    text.to_owned()
}

/// Why a connection cannot be attributed to an open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Closed(Closed),
    Unavailable,
}
