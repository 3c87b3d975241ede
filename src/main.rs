use std::process::ExitCode;

fn main() -> ExitCode {
    // reqwest, lettre and rumqttc can pull in more than one rustls crypto provider; with two,
    // rustls cannot pick one and mqtts:// panics at connect. Install ring explicitly, first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reload_butler::cli::main()
}
