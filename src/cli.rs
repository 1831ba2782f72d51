//! The subcommands behind `main`.

use std::process::ExitCode;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::{self, App, DEFAULT_PROJECT};
use crate::config::{ApiKeyCommand, Cli, Command, Settings};
use crate::domain::identifiers::new_secret;
use crate::graphql::auth::API_KEY_PREFIX;

/// Runs the command line; errors are printed with their context and exit with status 1.
pub fn run(cli: Cli) -> ExitCode {
    crate::telemetry::init(cli.settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&settings).await,
        Command::Migrate => {
            std::fs::create_dir_all(&settings.data_dir)?;
            app::open_store(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::PrintSchema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
        Command::ApiKey(command) => api_key(&settings, command).await,
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let http = TcpListener::bind(settings.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", settings.http_listen))?;
    let ssh = TcpListener::bind(settings.ssh_listen)
        .await
        .with_context(|| format!("cannot listen for SSH on {}", settings.ssh_listen))?;

    let mut app = App::start(settings, http, ssh).await?;
    if let Some(key) = &app.created_api_key {
        println!(
            "Created project \"{DEFAULT_PROJECT}\" with API key (shown once, also saved in {}):",
            settings.data_dir.join(app::ADMIN_KEY_FILE).display()
        );
        println!("  {key}");
    }
    println!("GraphQL:  http://{}/graphql", app.http_addr);
    println!("SSH:      {}", app.ssh_addr);

    tokio::select! {
        () = terminate_signal() => tracing::info!("shutting down"),
        () = app.stopped() => anyhow::bail!("a server stopped unexpectedly"),
    }
    app.shutdown().await;
    Ok(())
}

async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn api_key(settings: &Settings, command: ApiKeyCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let store = app::open_store(settings).await?;
    match command {
        ApiKeyCommand::Create { project, name } => {
            let project = store.ensure_project(&project).await?;
            let secret = new_secret(API_KEY_PREFIX);
            let key = store.ensure_api_key(project.id, &name, &secret).await?;
            println!("{secret}");
            eprintln!(
                "created API key {} ({}) for project {}",
                key.id, key.name, project.name
            );
        }
        ApiKeyCommand::List { project } => {
            let project = store
                .find_project(&project)
                .await?
                .context("no such project")?;
            for key in store.list_api_keys(project.id).await? {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}  {}…  {}  {}  {}",
                    key.id,
                    key.key_prefix,
                    key.name,
                    state,
                    key.created_at.to_rfc3339()
                );
            }
        }
        ApiKeyCommand::Revoke { project, id } => {
            let project = store
                .find_project(&project)
                .await?
                .context("no such project")?;
            anyhow::ensure!(
                store.revoke_api_key(project.id, id).await?,
                "no active key {id} in project {}",
                project.name
            );
            println!("revoked {id}");
        }
    }
    Ok(())
}
