//! The UI's state and how keys and node events change it. No terminal, no node: every
//! transition here is a plain function of the state and the event, so it is unit-tested
//! directly; [`super::draw`] renders the state and [`super::run`] performs the actions.

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, FeeRate, SignedAmount};
use interfaces::Balances;

use crate::commands::{CliError, parse_address, parse_send_amount};

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Overview,
    Receive,
    Send,
    Mine,
    Wallets,
}

impl Tab {
    pub(crate) const ALL: [Tab; 5] = [
        Tab::Overview,
        Tab::Receive,
        Tab::Send,
        Tab::Mine,
        Tab::Wallets,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Receive => "Receive",
            Tab::Send => "Send",
            Tab::Mine => "Mine",
            Tab::Wallets => "Wallets",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    fn step(self, forward: bool) -> Tab {
        let n = Tab::ALL.len();
        let i = if forward {
            self.index() + 1
        } else {
            self.index() + n - 1
        };
        Tab::ALL[i % n]
    }

    /// Whether printable keys are typed into a text field here (so `q` does not quit).
    fn takes_text(self) -> bool {
        matches!(self, Tab::Send)
    }
}

/// A key, reduced to what the UI distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Backspace,
    /// Ctrl-C: quits from anywhere.
    Interrupt,
}

/// One line of the recent-transactions list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxLine {
    pub(crate) txid: String,
    /// Net effect on the wallet (credit - debit).
    pub(crate) amount: SignedAmount,
    pub(crate) confirmations: u32,
}

/// The wallet part of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalletView {
    pub(crate) name: String,
    pub(crate) balances: Balances,
    /// Newest first.
    pub(crate) recent: Vec<TxLine>,
}

/// Everything the overview shows, fetched together after a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) height: u32,
    /// Header time of the tip (Unix seconds).
    pub(crate) tip_time: u32,
    pub(crate) mempool_size: u64,
    /// `Err` says why there is no wallet to show (no wallet process, not loaded...).
    pub(crate) wallet: Result<WalletView, String>,
    pub(crate) wallets: Vec<String>,
}

/// What happened, from the terminal or the node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    Key(Key),
    /// A fresh snapshot after a notification or an action.
    Snapshot(Snapshot),
    /// The node announced a new tip; a snapshot follows.
    TipChanged {
        height: u32,
        time: u32,
    },
    /// A receive address the wallet just handed out.
    NewAddress(String),
    /// An action finished: `Ok` is a success message, `Err` the error line.
    Done(Result<String, String>),
    /// The wallet switcher's choice is loaded; wallet views and actions now use it.
    WalletSwitched(String),
    /// The connection to the node is gone.
    Disconnected,
    /// Only the screen changed (a resize): redraw.
    Redraw,
}

/// Work for the controller; the outcome comes back as an [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    NewAddress,
    Send {
        address: Address<NetworkUnchecked>,
        amount: Amount,
        fee_rate: Option<FeeRate>,
    },
    Mine(u32),
    SwitchWallet(String),
}

/// The Send form's fields, in focus order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Address,
    Amount,
    FeeRate,
}

impl Field {
    pub(crate) const ALL: [Field; 3] = [Field::Address, Field::Amount, Field::FeeRate];
}

/// The Send form: its text and a validation message per field, shown beside the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SendForm {
    pub(crate) text: [String; 3],
    pub(crate) errors: [Option<String>; 3],
    pub(crate) focus: usize,
}

/// The most blocks one Mine request makes.
pub(crate) const MAX_MINE: u32 = 1000;

/// The connection to the node as the status line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Connected,
    Lost,
}

/// The whole UI state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct App {
    pub(crate) tab: Tab,
    pub(crate) help: bool,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) link: Link,
    /// `shm` or `socket`, and how we reached the node, for the status line.
    pub(crate) connection_label: String,
    pub(crate) address: Option<String>,
    /// Text to put on the terminal's clipboard at the next draw (a new receive address).
    pub(crate) to_clipboard: Option<String>,
    pub(crate) send: SendForm,
    pub(crate) mine_count: String,
    pub(crate) wallet_cursor: usize,
    /// The last action's outcome, shown in the status line.
    pub(crate) notice: Option<Result<String, String>>,
    /// An action is running; further actions wait for it.
    pub(crate) busy: bool,
    pub(crate) quit: bool,
}

impl App {
    pub(crate) fn new(connection_label: String) -> App {
        App {
            tab: Tab::Overview,
            help: false,
            snapshot: None,
            link: Link::Connected,
            connection_label,
            address: None,
            to_clipboard: None,
            send: SendForm::default(),
            mine_count: String::from("1"),
            wallet_cursor: 0,
            notice: None,
            busy: false,
            quit: false,
        }
    }

    /// Applies `event`; returns the action to perform, if any.
    pub(crate) fn handle(&mut self, event: Event) -> Option<Action> {
        match event {
            Event::Key(key) => return self.key(key),
            Event::Snapshot(s) => {
                self.wallet_cursor = self.wallet_cursor.min(s.wallets.len().saturating_sub(1));
                self.snapshot = Some(s);
            }
            Event::TipChanged { height, time } => {
                if let Some(s) = &mut self.snapshot {
                    s.height = height;
                    s.tip_time = time;
                }
            }
            Event::NewAddress(a) => {
                self.busy = false;
                self.to_clipboard = Some(a.clone());
                self.address = Some(a);
            }
            Event::Done(result) => {
                self.busy = false;
                if result.is_ok() && self.tab == Tab::Send {
                    self.send = SendForm::default();
                }
                self.notice = Some(result);
            }
            Event::WalletSwitched(name) => {
                self.busy = false;
                self.address = None;
                self.notice = Some(Ok(format!("switched to wallet {name}")));
            }
            Event::Disconnected => {
                self.link = Link::Lost;
                self.busy = false;
            }
            Event::Redraw => {}
        }
        None
    }

    fn key(&mut self, key: Key) -> Option<Action> {
        if key == Key::Interrupt {
            self.quit = true;
            return None;
        }
        if self.help {
            // Any key closes the help; `q` still quits.
            self.help = false;
            self.quit = key == Key::Char('q');
            return None;
        }
        match key {
            Key::Char('?') => self.help = true,
            Key::Char('q') if !self.tab.takes_text() => self.quit = true,
            Key::Tab => self.tab = self.tab.step(true),
            Key::BackTab => self.tab = self.tab.step(false),
            Key::Esc => {
                self.tab = Tab::Overview;
                self.notice = None;
            }
            key => return self.tab_key(key),
        }
        None
    }

    fn tab_key(&mut self, key: Key) -> Option<Action> {
        match (self.tab, key) {
            (Tab::Receive, Key::Enter | Key::Char('n')) => return self.start(Action::NewAddress),
            (Tab::Send, Key::Up) => {
                self.send.focus = (self.send.focus + Field::ALL.len() - 1) % Field::ALL.len()
            }
            (Tab::Send, Key::Down) => self.send.focus = (self.send.focus + 1) % Field::ALL.len(),
            (Tab::Send, Key::Backspace) => {
                self.send.text[self.send.focus].pop();
                self.send.errors[self.send.focus] = None;
            }
            (Tab::Send, Key::Char(c)) if !c.is_control() => {
                self.send.text[self.send.focus].push(c);
                self.send.errors[self.send.focus] = None;
            }
            (Tab::Send, Key::Enter) => match self.send.validate() {
                Some(action) => return self.start(action),
                None => {
                    // Focus the first field with a problem.
                    self.send.focus = self
                        .send
                        .errors
                        .iter()
                        .position(Option::is_some)
                        .unwrap_or(0);
                }
            },
            (Tab::Mine, Key::Char(c)) if c.is_ascii_digit() && self.mine_count.len() < 4 => {
                self.mine_count.push(c)
            }
            (Tab::Mine, Key::Backspace) => {
                self.mine_count.pop();
            }
            (Tab::Mine, Key::Enter) => match self.mine_count.parse::<u32>() {
                Ok(n) if (1..=MAX_MINE).contains(&n) => return self.start(Action::Mine(n)),
                _ => {
                    self.notice = Some(Err(format!(
                        "enter a number of blocks from 1 to {MAX_MINE}"
                    )))
                }
            },
            (Tab::Wallets, Key::Up) => self.wallet_cursor = self.wallet_cursor.saturating_sub(1),
            (Tab::Wallets, Key::Down) => {
                let n = self.snapshot.as_ref().map_or(0, |s| s.wallets.len());
                self.wallet_cursor = (self.wallet_cursor + 1).min(n.saturating_sub(1));
            }
            (Tab::Wallets, Key::Enter) => {
                let name = self
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.wallets.get(self.wallet_cursor));
                if let Some(name) = name.cloned() {
                    return self.start(Action::SwitchWallet(name));
                }
            }
            _ => {}
        }
        None
    }

    /// Hands `action` to the controller unless one is running or the node is gone.
    fn start(&mut self, action: Action) -> Option<Action> {
        if self.link == Link::Lost {
            self.notice = Some(Err("the node is gone; press q to quit".to_owned()));
            return None;
        }
        if self.busy {
            self.notice = Some(Err("busy with the previous request".to_owned()));
            return None;
        }
        self.busy = true;
        self.notice = None;
        Some(action)
    }
}

impl SendForm {
    /// Checks every field, leaving a message beside each bad one; the send action when all
    /// are good.
    fn validate(&mut self) -> Option<Action> {
        let message = |e: CliError| match e {
            CliError::Rpc { message, .. } => message,
            CliError::Other(e) => e.to_string(),
        };
        let [address, amount, fee_rate] = &self.text;
        let address = parse_address(address.trim()).map_err(message);
        let amount = parse_send_amount(amount.trim()).map_err(message);
        let fee_rate = parse_fee_rate_sat_vb(fee_rate.trim());
        self.errors = [
            address.as_ref().err().cloned(),
            amount.as_ref().err().cloned(),
            fee_rate.as_ref().err().cloned(),
        ];
        Some(Action::Send {
            address: address.ok()?.as_unchecked().clone(),
            amount: amount.ok()?,
            fee_rate: fee_rate.ok()?,
        })
    }
}

/// A fee rate in whole sat/vB; empty lets the wallet choose.
fn parse_fee_rate_sat_vb(s: &str) -> Result<Option<FeeRate>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u64>()
        .ok()
        .filter(|r| *r > 0)
        .and_then(FeeRate::from_sat_per_vb)
        .map(Some)
        .ok_or_else(|| format!("fee rate must be a whole number of sat/vB above 0, not {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            assert_eq!(app.handle(Event::Key(Key::Char(c))), None);
        }
    }

    fn snapshot(wallets: &[&str]) -> Snapshot {
        Snapshot {
            height: 7,
            tip_time: 1_700_000_000,
            mempool_size: 2,
            wallet: Err("no wallet".into()),
            wallets: wallets.iter().map(|w| (*w).to_owned()).collect(),
        }
    }

    #[test]
    fn tabs_help_and_quit() {
        let mut app = App::new("shm".into());
        app.handle(Event::Key(Key::Tab));
        assert_eq!(app.tab, Tab::Receive);
        app.handle(Event::Key(Key::BackTab));
        app.handle(Event::Key(Key::BackTab));
        assert_eq!(app.tab, Tab::Wallets);
        app.handle(Event::Key(Key::Char('?')));
        assert!(app.help);
        app.handle(Event::Key(Key::Char('x')));
        assert!(!app.help && !app.quit);
        app.handle(Event::Key(Key::Char('q')));
        assert!(app.quit);

        // In the Send form `q` is text (regtest addresses contain it); Ctrl-C still quits.
        let mut app = App::new("shm".into());
        app.tab = Tab::Send;
        typed(&mut app, "bcrt1q");
        assert!(!app.quit);
        assert_eq!(app.send.text[0], "bcrt1q");
        app.handle(Event::Key(Key::Interrupt));
        assert!(app.quit);
    }

    #[test]
    fn send_form_validates_in_place_then_sends() {
        let mut app = App::new("shm".into());
        app.tab = Tab::Send;
        typed(&mut app, "nonsense");
        app.handle(Event::Key(Key::Down));
        typed(&mut app, "0");
        app.handle(Event::Key(Key::Down));
        typed(&mut app, "x");
        assert_eq!(app.handle(Event::Key(Key::Enter)), None);
        assert_eq!(
            app.send.errors[0].as_deref(),
            Some("Invalid address: nonsense")
        );
        assert_eq!(
            app.send.errors[1].as_deref(),
            Some("Invalid amount for send")
        );
        assert!(
            app.send.errors[2]
                .as_deref()
                .is_some_and(|e| e.contains("sat/vB"))
        );
        assert_eq!(app.send.focus, 0);

        // A mainnet address is refused too.
        app.send.text = [
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4".into(),
            "1".into(),
            String::new(),
        ];
        assert_eq!(app.handle(Event::Key(Key::Enter)), None);
        assert!(app.send.errors[0].is_some());

        app.send.text = [ADDRESS.into(), "1.5".into(), "2".into()];
        let action = app.handle(Event::Key(Key::Enter)).expect("valid form");
        assert_eq!(
            action,
            Action::Send {
                address: ADDRESS.parse().unwrap(),
                amount: Amount::from_sat(150_000_000),
                fee_rate: FeeRate::from_sat_per_vb(2),
            }
        );
        assert!(app.busy);
        assert_eq!(app.send.errors, [None, None, None]);
        // A second Enter while busy does not send twice.
        assert_eq!(app.handle(Event::Key(Key::Enter)), None);
        app.handle(Event::Done(Ok("sent".into())));
        assert!(!app.busy);
        assert_eq!(app.send, SendForm::default());
    }

    #[test]
    fn mine_and_receive_start_actions() {
        let mut app = App::new("shm".into());
        app.tab = Tab::Mine;
        app.handle(Event::Key(Key::Backspace));
        typed(&mut app, "10a1");
        assert_eq!(app.mine_count, "101");
        assert_eq!(app.handle(Event::Key(Key::Enter)), Some(Action::Mine(101)));
        app.handle(Event::Done(Err("error code: -1: boom".into())));
        assert_eq!(app.notice, Some(Err("error code: -1: boom".into())));
        app.mine_count = "0".into();
        assert_eq!(app.handle(Event::Key(Key::Enter)), None);

        app.tab = Tab::Receive;
        assert_eq!(
            app.handle(Event::Key(Key::Char('n'))),
            Some(Action::NewAddress)
        );
        app.handle(Event::NewAddress(ADDRESS.into()));
        assert_eq!(app.address.as_deref(), Some(ADDRESS));
    }

    #[test]
    fn wallet_switcher_follows_the_snapshot() {
        let mut app = App::new("shm".into());
        app.tab = Tab::Wallets;
        assert_eq!(app.handle(Event::Key(Key::Enter)), None);
        app.handle(Event::Snapshot(snapshot(&["default", "w2"])));
        app.handle(Event::Key(Key::Down));
        app.handle(Event::Key(Key::Down));
        assert_eq!(
            app.handle(Event::Key(Key::Enter)),
            Some(Action::SwitchWallet("w2".into()))
        );
        app.handle(Event::WalletSwitched("w2".into()));
        assert!(!app.busy);
        assert_eq!(app.notice, Some(Ok("switched to wallet w2".into())));
        app.handle(Event::Snapshot(snapshot(&["default"])));
        assert_eq!(app.wallet_cursor, 0);
    }

    #[test]
    fn notifications_update_and_a_dead_node_stops_actions() {
        let mut app = App::new("shm".into());
        app.handle(Event::TipChanged { height: 9, time: 5 });
        assert_eq!(app.snapshot, None);
        app.handle(Event::Snapshot(snapshot(&[])));
        app.handle(Event::TipChanged { height: 9, time: 5 });
        assert_eq!(
            app.snapshot.as_ref().map(|s| (s.height, s.tip_time)),
            Some((9, 5))
        );

        app.handle(Event::Disconnected);
        assert_eq!(app.link, Link::Lost);
        app.tab = Tab::Receive;
        assert_eq!(app.handle(Event::Key(Key::Enter)), None);
        assert!(matches!(&app.notice, Some(Err(m)) if m.contains("node is gone")));
        app.handle(Event::Key(Key::Char('q')));
        assert!(app.quit);
    }
}
