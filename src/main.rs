use std::process::ExitCode;

fn main() -> ExitCode {
    reload_butler::tls::ensure_crypto_provider();
    reload_butler::cli::main()
}
