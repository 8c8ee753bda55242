//! Renders an [`App`] (no state changes here).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Clear, Paragraph, Tabs, Wrap};

use super::state::{App, Field, Link, MAX_MINE, Tab};
use crate::json::{format_btc, format_signed_btc};

/// Keys shown by `?`.
const HELP: &str = "\
Tab / Shift-Tab   next / previous screen
Esc               back to Overview
?                 this help (any key closes it)
q                 quit (except while typing in Send)
Ctrl-C            quit from anywhere
Ctrl-L            repaint the screen

Receive:  Enter or n   new address, copied to the clipboard
Send:     Up/Down move between fields, Enter sends
Mine:     type a number of blocks, Enter mines them to this wallet
Wallets:  Up/Down choose, Enter switches wallet";

pub(crate) fn draw(frame: &mut Frame<'_>, app: &App, now: u64) {
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let index = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    frame.render_widget(
        Tabs::new(Tab::ALL.iter().map(|t| t.title()))
            .select(index)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        tabs,
    );
    let block = Block::bordered().title(format!(" bitcoin-gui: {} ", app.tab.title()));
    let inner = block.inner(body);
    frame.render_widget(block, body);
    match app.tab {
        Tab::Overview => overview(frame, app, inner, now),
        Tab::Receive => receive(frame, app, inner),
        Tab::Send => send(frame, app, inner),
        Tab::Mine => mine(frame, app, inner),
        Tab::Wallets => wallets(frame, app, inner),
    }
    frame.render_widget(Paragraph::new(status_line(app)), status);
    if app.help {
        let area = centered(frame.area(), 64, 15);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(HELP).block(Block::bordered().title(" keys ")),
            area,
        );
    }
}

fn overview(frame: &mut Frame<'_>, app: &App, area: Rect, now: u64) {
    let Some(s) = &app.snapshot else {
        frame.render_widget(Paragraph::new("loading..."), area);
        return;
    };
    let age = now.saturating_sub(u64::from(s.tip_time));
    let mut lines = vec![
        Line::from(format!("Height       {}", s.height)),
        Line::from(format!("Tip age      {}", human_age(age))),
        Line::from(format!("Mempool      {} transactions", s.mempool_size)),
        Line::from(""),
    ];
    match &s.wallet {
        Ok(w) => {
            lines.push(Line::from(format!("Wallet       {}", w.name)).bold());
            lines.push(Line::from(format!(
                "Balance      {} BTC",
                format_btc(w.balances.trusted)
            )));
            lines.push(Line::from(format!(
                "Pending      {} BTC",
                format_btc(w.balances.untrusted_pending)
            )));
            lines.push(Line::from(format!(
                "Immature     {} BTC",
                format_btc(w.balances.immature)
            )));
            lines.push(Line::from(""));
            lines.push(Line::from("Recent transactions").bold());
            if w.recent.is_empty() {
                lines.push(Line::from("  none"));
            }
            for tx in &w.recent {
                lines.push(Line::from(format!(
                    "  {:>17}  {:>5} conf  {}",
                    format_signed_btc(tx.amount),
                    tx.confirmations,
                    tx.txid
                )));
            }
        }
        Err(why) => lines.push(Line::from(format!("Wallet       {why}"))),
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn receive(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut lines = vec![
        Line::from("Press Enter (or n) for a new receive address."),
        Line::from(""),
    ];
    if let Some(address) = &app.address {
        lines.push(Line::from(address.as_str()).bold());
        lines.push(Line::from(""));
        lines.push(Line::from(
            "Also sent to the clipboard, where the terminal allows it (OSC 52; in tmux: set-clipboard on).",
        ));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn send(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut lines = Vec::new();
    for (i, field) in Field::ALL.iter().enumerate() {
        let label = match field {
            Field::Address => "Address           ",
            Field::Amount => "Amount (BTC)      ",
            Field::FeeRate => "Fee rate (sat/vB) ",
        };
        let focused = app.send.focus == i;
        let cursor = if focused { "_" } else { "" };
        let style = if focused {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(label, style),
            Span::raw(format!("{}{cursor}", app.send.text[i])),
        ]));
        match &app.send.errors[i] {
            Some(e) => lines.push(Line::from(format!("                  {e}")).fg(Color::Red)),
            None if *field == Field::FeeRate => {
                lines.push(Line::from("                  empty: the wallet chooses"))
            }
            None => lines.push(Line::from("")),
        }
    }
    lines.push(Line::from("Enter sends."));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn mine(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let lines = vec![
        Line::from(format!(
            "Blocks to mine (1..{MAX_MINE}): {}_",
            app.mine_count
        )),
        Line::from(""),
        Line::from("Enter mines them to a new address of this wallet; the proof of work is"),
        Line::from("solved in this process and the node validates each block."),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

fn wallets(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let current = app
        .snapshot
        .as_ref()
        .and_then(|s| s.wallet.as_ref().ok())
        .map(|w| &w.name);
    let names = app
        .snapshot
        .as_ref()
        .map(|s| s.wallets.as_slice())
        .unwrap_or_default();
    let mut lines: Vec<Line<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let marker = if Some(name) == current { "*" } else { " " };
            let line = Line::from(format!("{marker} {name}"));
            if i == app.wallet_cursor {
                line.reversed()
            } else {
                line
            }
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::from("no wallet loaded"));
    }
    frame.render_widget(Paragraph::new(Text::from(lines)), area);
}

fn status_line(app: &App) -> Line<'_> {
    let (state, color) = match app.link {
        Link::Connected => ("connected", Color::Green),
        Link::Lost => ("disconnected: the node is gone (q quits)", Color::Red),
    };
    let mut spans = vec![
        Span::raw(format!(" {} ", app.connection_label)),
        Span::styled(state, Style::new().fg(color)),
    ];
    if app.busy {
        spans.push(Span::raw("  working..."));
    }
    match &app.notice {
        Some(Ok(m)) => spans.push(Span::styled(
            format!("  {m}"),
            Style::new().fg(Color::Green),
        )),
        Some(Err(m)) => spans.push(Span::styled(format!("  {m}"), Style::new().fg(Color::Red))),
        None => spans.push(Span::raw("  ? for help")),
    }
    Line::from(spans)
}

fn human_age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}
