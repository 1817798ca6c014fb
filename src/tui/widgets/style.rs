//! How the widgets colour what they draw, and how they do without (NO_COLOR): every coloured meaning also
//! has a character, so a colour only ever adds to it.

use ratatui::style::{Color, Style};

/// `color` as a foreground, or no style at all without colour.
pub(super) fn styled(no_color: bool, color: Color) -> Style {
    if no_color {
        Style::new()
    } else {
        Style::new().fg(color)
    }
}
