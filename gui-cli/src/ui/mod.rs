//! The interactive terminal UI: [`state`] holds the logic, [`draw`] renders it, and this
//! module connects both to the terminal and the node.
//!
//! One channel of [`Event`]s drives the UI thread: keys from a reader thread, node
//! notifications (`handle_notify_block_tip`, `handle_transaction_changed`) from the
//! session's callback threads, snapshots from a refresher thread, action outcomes from
//! short-lived worker threads, and the disconnect from a watcher. Nothing polls the node:
//! a snapshot is fetched at start, after each notification, and after a wallet switch.

mod clipboard;
mod draw;
mod state;

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bitcoin::SignedAmount;
use interfaces::{ErrorCode, Handler, InterfaceError, TipInfo};
use ratatui::crossterm::event::{self, KeyCode, KeyEventKind, KeyModifiers};

use self::state::{Action, App, Event, Key, Link, Snapshot, TxLine, WalletView};
use crate::backend::{Mode, NodeLink};
use crate::commands::{CliError, Context};
use crate::json::format_btc;
use crate::mine;

/// Transactions the overview lists.
const RECENT: usize = 8;

/// How often the screen is redrawn without an event, so the tip age stays current. The
/// node is not asked anything on these ticks.
const CLOCK_TICK: Duration = Duration::from_secs(1);

/// Runs the UI until `q`/Ctrl-C. Returns an error (after restoring the terminal) when the
/// node went away while the UI was open.
pub(crate) fn run(link: &NodeLink, ctx: Context) -> anyhow::Result<()> {
    let (events, rx) = mpsc::channel();
    let watcher = events.clone();
    link.on_disconnect(move || {
        let _ = watcher.send(Event::Disconnected);
    })
    .context("cannot start the connection watcher")?;

    let mut controller = Controller::start(ctx, events.clone())?;
    spawn_key_reader(events.clone())?;

    let mode = match &link.mode {
        Mode::Spawned { pid } => format!("spawned node pid {pid}"),
        Mode::Connected(endpoint) => endpoint.to_string(),
    };
    let mut app = App::new(format!("{} | {mode} |", link.transport));
    let mut terminal = ratatui::init();
    let outcome = loop {
        if let Err(e) = terminal.draw(|frame| draw::draw(frame, &app, unix_now())) {
            break Err(anyhow::Error::new(e).context("cannot draw the terminal"));
        }
        if let Some(text) = app.to_clipboard.take()
            && let Err(e) = clipboard::copy(terminal.backend_mut(), &text)
        {
            break Err(anyhow::Error::new(e).context("cannot write to the terminal"));
        }
        let event = match rx.recv_timeout(CLOCK_TICK) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        };
        // Repaint everything, not only what changed: after a resize, or on Ctrl-L when a
        // child process (the spawned node shares our stderr) wrote over the screen.
        if event == Event::Redraw
            && let Err(e) = terminal.clear()
        {
            break Err(anyhow::Error::new(e).context("cannot clear the terminal"));
        }
        controller.apply(&mut app, event);
        if app.quit {
            break Ok(());
        }
    };
    ratatui::restore();
    drop(controller);
    outcome?;
    if app.link == Link::Lost {
        anyhow::bail!("the node disconnected while the UI was open (it exited or was stopped)");
    }
    Ok(())
}

/// Turns node notifications into events and events into actions: owns the subscriptions,
/// the refresher and the context (whose wallet the switcher changes).
struct Controller {
    current: Arc<Mutex<Context>>,
    events: Sender<Event>,
    refresh: Sender<()>,
    _tip_handler: Box<dyn Handler>,
    wallet_handler: Option<Box<dyn Handler>>,
}

impl Controller {
    /// Subscribes to tip and wallet notifications and asks for the first snapshot.
    fn start(ctx: Context, events: Sender<Event>) -> anyhow::Result<Controller> {
        let current = Arc::new(Mutex::new(ctx));
        let refresh = spawn_refresher(Arc::clone(&current), events.clone())?;
        let node = lock(&current)
            .node()
            .context("the node offers no Node interface")?;
        let tip_events = events.clone();
        let tip_refresh = refresh.clone();
        let tip_handler = node
            .handle_notify_block_tip(Arc::new(move |tip: &TipInfo| {
                let _ = tip_events.send(Event::TipChanged {
                    height: tip.height,
                    time: tip.time,
                });
                let _ = tip_refresh.send(());
            }))
            .context("cannot subscribe to tip notifications")?;
        let wallet_handler = subscribe_wallet(&lock(&current), &refresh);
        let _ = refresh.send(());
        Ok(Controller {
            current,
            events,
            refresh,
            _tip_handler: tip_handler,
            wallet_handler,
        })
    }

    /// Applies `event` to `app` and starts the action it asks for.
    fn apply(&mut self, app: &mut App, event: Event) {
        if let Event::WalletSwitched(name) = &event {
            let mut ctx = lock(&self.current);
            ctx.rpcwallet = Some(name.clone());
            self.wallet_handler = subscribe_wallet(&ctx, &self.refresh);
            let _ = self.refresh.send(());
        }
        if let Some(action) = app.handle(event) {
            perform(action, lock(&self.current).clone(), self.events.clone());
        }
    }
}

fn lock(current: &Mutex<Context>) -> std::sync::MutexGuard<'_, Context> {
    current.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Subscribes to the current wallet's transaction changes; `None` when there is no wallet
/// (the overview says why).
fn subscribe_wallet(ctx: &Context, refresh: &Sender<()>) -> Option<Box<dyn Handler>> {
    let refresh = refresh.clone();
    ctx.wallet()
        .and_then(|w| {
            w.handle_transaction_changed(Arc::new(move |_, _| {
                let _ = refresh.send(());
            }))
        })
        .ok()
}

/// A thread that fetches a [`Snapshot`] per request, coalescing requests that queue up
/// while it works.
fn spawn_refresher(
    current: Arc<Mutex<Context>>,
    events: Sender<Event>,
) -> anyhow::Result<Sender<()>> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("ui-refresh".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                let ctx = lock(&current).clone();
                match snapshot(&ctx) {
                    Ok(s) => {
                        if events.send(Event::Snapshot(s)).is_err() {
                            return;
                        }
                    }
                    // The watcher reports the disconnect.
                    Err(InterfaceError::Disconnected) => return,
                    Err(e) => {
                        let _ = events.send(Event::Done(Err(CliError::from(e).to_string())));
                    }
                }
            }
        })
        .context("cannot start the refresh thread")?;
    Ok(tx)
}

fn snapshot(ctx: &Context) -> Result<Snapshot, InterfaceError> {
    let node = ctx.node()?;
    let tip = node.get_tip_info()?;
    let mempool = node.get_mempool_info()?;
    let describe = |e: InterfaceError| CliError::from(e).to_string();
    let (wallet, wallets) = match ctx.wallet_loader() {
        Ok(loader) => (
            ctx.wallet().and_then(|w| {
                let txs = w.list_transactions()?;
                let recent = txs
                    .iter()
                    .rev()
                    .take(RECENT)
                    .map(|wtx| TxLine {
                        txid: wtx.tx.compute_txid().to_string(),
                        amount: signed(wtx.credit) - signed(wtx.debit),
                        confirmations: wtx
                            .block
                            .map_or(0, |b| tip.height.saturating_sub(b.height).saturating_add(1)),
                    })
                    .collect();
                Ok(WalletView {
                    name: w.get_wallet_name()?,
                    balances: w.get_balances()?,
                    recent,
                })
            }),
            loader.list_wallets()?,
        ),
        Err(e) => (Err(e), Vec::new()),
    };
    if let Err(InterfaceError::Disconnected) = &wallet {
        return Err(InterfaceError::Disconnected);
    }
    Ok(Snapshot {
        height: tip.height,
        tip_time: tip.time,
        mempool_size: mempool.size,
        wallet: wallet.map_err(describe),
        wallets,
    })
}

fn signed(amount: bitcoin::Amount) -> SignedAmount {
    amount.to_signed().unwrap_or(SignedAmount::MAX)
}

/// Runs `action` on a worker thread; its outcome comes back as an event.
fn perform(action: Action, ctx: Context, events: Sender<Event>) {
    let spawned = std::thread::Builder::new().name("ui-action".into()).spawn({
        let events = events.clone();
        move || {
            let outcome = match action {
                Action::NewAddress => ctx
                    .wallet()
                    .and_then(|w| w.get_new_address())
                    .map(|a| Event::NewAddress(a.assume_checked().to_string())),
                Action::Send {
                    address,
                    amount,
                    fee_rate,
                } => ctx
                    .wallet()
                    .and_then(|w| w.send_to_address(&address, amount, fee_rate))
                    .map(|txid| {
                        Event::Done(Ok(format!("sent {} BTC in {txid}", format_btc(amount))))
                    }),
                Action::Mine(n) => mine_to_wallet(&ctx, n)
                    .map(|tip| Event::Done(Ok(format!("mined {n} block(s), tip {tip}")))),
                Action::SwitchWallet(name) => ctx
                    .wallet_loader()
                    .and_then(|loader| loader.get_wallet(&name))
                    .map(|_| Event::WalletSwitched(name)),
            };
            let event = outcome.unwrap_or_else(|e| Event::Done(Err(CliError::from(e).to_string())));
            let _ = events.send(event);
        }
    });
    if let Err(e) = spawned {
        let _ = events.send(Event::Done(Err(format!(
            "cannot start a worker thread: {e}"
        ))));
    }
}

fn mine_to_wallet(ctx: &Context, n: u32) -> Result<bitcoin::BlockHash, InterfaceError> {
    let address = ctx.wallet()?.get_new_address()?.assume_checked();
    let mining = ctx.init.make_mining()?;
    let hashes = mine::generate(mining.as_ref(), &address.script_pubkey(), n)?;
    hashes
        .last()
        .copied()
        .ok_or_else(|| InterfaceError::remote(ErrorCode::INVALID_PARAMETER, "no block to mine"))
}

/// Forwards key presses from the terminal. The thread ends with the process (a blocked
/// terminal read cannot be interrupted portably) or when the UI has gone.
fn spawn_key_reader(events: Sender<Event>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("ui-keys".into())
        .spawn(move || {
            while let Ok(ev) = event::read() {
                let event::Event::Key(k) = ev else {
                    // A resize or focus change.
                    if events.send(Event::Redraw).is_err() {
                        return;
                    }
                    continue;
                };
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                let key = match k.code {
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        Key::Interrupt
                    }
                    KeyCode::Char('l') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        if events.send(Event::Redraw).is_err() {
                            return;
                        }
                        continue;
                    }
                    KeyCode::Char(c) => Key::Char(c),
                    KeyCode::Enter => Key::Enter,
                    KeyCode::Esc => Key::Esc,
                    KeyCode::Tab => Key::Tab,
                    KeyCode::BackTab => Key::BackTab,
                    KeyCode::Up => Key::Up,
                    KeyCode::Down => Key::Down,
                    KeyCode::Backspace => Key::Backspace,
                    _ => continue,
                };
                if events.send(Event::Key(key)).is_err() {
                    return;
                }
            }
        })
        .context("cannot start the key reader")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::state::Tab;
    use super::*;

    /// Applies events until `done` holds; panics if that takes more than 30 s.
    fn until(
        controller: &mut Controller,
        app: &mut App,
        rx: &mpsc::Receiver<Event>,
        done: impl Fn(&App) -> bool,
    ) {
        while !done(app) {
            let event = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("an event within 30 s");
            controller.apply(app, event);
        }
    }

    fn screen(app: &App) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
        terminal
            .draw(|f| draw::draw(f, app, u64::from(u32::MAX)))
            .unwrap();
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn overview_follows_blocks_mined_by_another_client() {
        let (_node, ctx, _sessions) = crate::commands::tests::start();
        let other = ctx.clone();
        let (events, rx) = mpsc::channel();
        let mut controller = Controller::start(ctx, events).unwrap();
        let mut app = App::new("shm | test |".into());
        until(&mut controller, &mut app, &rx, |a| a.snapshot.is_some());
        assert!(screen(&app).contains("Height       0"));
        assert!(screen(&app).contains("no wallet process is attached"));

        // Another client mines; the UI learns of it from the tip notification alone.
        let address = crate::commands::parse_address(crate::commands::tests::ADDRESS).unwrap();
        let mining = other.init.make_mining().unwrap();
        mine::generate(mining.as_ref(), &address.script_pubkey(), 2).unwrap();
        until(&mut controller, &mut app, &rx, |a| {
            a.snapshot.as_ref().is_some_and(|s| s.height == 2)
        });
        let text = screen(&app);
        assert!(text.contains("Height       2"), "{text}");
        assert!(text.contains("shm | test | connected"), "{text}");

        // Keys go through the same path; `?` shows the help, `q` then quits.
        controller.apply(&mut app, Event::Key(Key::Char('?')));
        assert!(screen(&app).contains("Ctrl-C"));
        controller.apply(&mut app, Event::Key(Key::Char('q')));
        assert!(app.quit);
    }

    #[test]
    fn mine_action_reports_the_missing_wallet_in_place() {
        let (_node, ctx, _sessions) = crate::commands::tests::start();
        let (events, rx) = mpsc::channel();
        let mut controller = Controller::start(ctx, events).unwrap();
        let mut app = App::new("shm".into());
        for key in [Key::Tab, Key::Tab, Key::Tab, Key::Enter] {
            controller.apply(&mut app, Event::Key(key));
        }
        assert!(app.busy);
        until(&mut controller, &mut app, &rx, |a| !a.busy);
        assert_eq!(
            app.notice,
            Some(Err("error code: -18: no wallet process is attached".into()))
        );
        assert!(screen(&app).contains("no wallet process is attached"));
    }

    #[test]
    fn receive_send_and_switch_wallets() {
        let (node, ctx, _sessions) = crate::commands::tests::start();
        let wallets = node.attach_wallets(bitcoin::Amount::from_int_btc(50));
        crate::commands::Command::parse("createwallet", &["w2".into()])
            .unwrap()
            .run(&ctx)
            .unwrap();
        let (events, rx) = mpsc::channel();
        let mut controller = Controller::start(ctx, events).unwrap();
        let mut app = App::new("shm".into());
        until(&mut controller, &mut app, &rx, |a| a.snapshot.is_some());
        let text = screen(&app);
        assert!(text.contains("Wallet       default"), "{text}");
        assert!(text.contains("Balance      50.00000000 BTC"), "{text}");

        // Receive: a new address, shown in full.
        controller.apply(&mut app, Event::Key(Key::Tab));
        controller.apply(&mut app, Event::Key(Key::Enter));
        until(&mut controller, &mut app, &rx, |a| a.address.is_some());
        let address = app.address.clone().unwrap();
        assert!(screen(&app).contains(&address), "{}", screen(&app));

        // Send, typed key by key; the wallet's transaction notification refreshes the balance.
        controller.apply(&mut app, Event::Key(Key::Tab));
        for c in address.chars().chain(std::iter::once('\n')) {
            let key = if c == '\n' { Key::Down } else { Key::Char(c) };
            controller.apply(&mut app, Event::Key(key));
        }
        for key in [Key::Char('2'), Key::Down, Key::Char('3'), Key::Enter] {
            controller.apply(&mut app, Event::Key(key));
        }
        until(&mut controller, &mut app, &rx, |a| {
            a.snapshot.as_ref().is_some_and(|s| {
                s.wallet
                    .as_ref()
                    .is_ok_and(|w| w.balances.trusted == bitcoin::Amount::from_int_btc(48))
            })
        });
        assert_eq!(
            wallets.wallet("default").sent(),
            [(
                address,
                bitcoin::Amount::from_int_btc(2),
                bitcoin::FeeRate::from_sat_per_vb(3)
            )]
        );
        assert!(matches!(&app.notice, Some(Ok(m)) if m.starts_with("sent 2.00000000 BTC in ")));

        // Switch to w2: the overview follows it.
        for key in [Key::Tab, Key::Tab, Key::Down, Key::Enter] {
            controller.apply(&mut app, Event::Key(key));
        }
        assert_eq!(app.tab, Tab::Wallets);
        until(&mut controller, &mut app, &rx, |a| {
            a.snapshot
                .as_ref()
                .is_some_and(|s| s.wallet.as_ref().is_ok_and(|w| w.name == "w2"))
        });
        controller.apply(&mut app, Event::Key(Key::Esc));
        let text = screen(&app);
        assert!(text.contains("Wallet       w2"), "{text}");
        assert!(text.contains("Balance      0.00000000 BTC"), "{text}");
    }
}
