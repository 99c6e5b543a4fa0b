//! Diagnostics: a message at a place in the script, printed the way
//! compilers print them (`script.bt:3:21: error: …`, the source line, a
//! caret under the place), with an optional hint.

use std::fmt;

/// A byte range of the source.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// An error in a script.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
    /// A suggestion (`did you mean …?`), printed after the caret line.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Adds "did you mean `PREFIXname`?" when a candidate is near `word`.
    pub fn suggest<'a>(
        self,
        word: &str,
        candidates: impl IntoIterator<Item = &'a str>,
        prefix: &str,
    ) -> Diagnostic {
        match nearest(word, candidates) {
            Some(n) => self.with_hint(format!("did you mean `{prefix}{n}`?")),
            None => self,
        }
    }

    /// Line and column (both from 1; the column counts characters) of
    /// the span's start in `source`.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        let at = self.span.start.min(source.len());
        let before = &source[..floor_char_boundary(source, at)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// The diagnostic as a compiler prints it, for the script named
    /// `file` with text `source`.
    pub fn render(&self, file: &str, source: &str) -> String {
        Rendered {
            d: self,
            file,
            source,
        }
        .to_string()
    }
}

/// Where each line of a source text starts, for finding the line and
/// column of many places (one per instruction) without scanning the text
/// up to each.
pub struct LineIndex<'a> {
    source: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(source: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { source, starts }
    }

    /// Line and column (both from 1; the column counts characters) of
    /// byte `at`, as [`Diagnostic::line_col`] gives them.
    pub fn line_col(&self, at: usize) -> (usize, usize) {
        let at = floor_char_boundary(self.source, at.min(self.source.len()));
        let line = self.starts.partition_point(|&s| s <= at);
        let start = self.starts[line - 1];
        (line, self.source[start..at].chars().count() + 1)
    }

    /// The text of line `line` (from 1), without its newline; empty past
    /// the end.
    pub fn line(&self, line: usize) -> &'a str {
        let Some(&start) = line.checked_sub(1).and_then(|i| self.starts.get(i)) else {
            return "";
        };
        let end = self.starts.get(line).map_or(self.source.len(), |&e| e - 1);
        self.source[start..end].trim_end_matches('\r')
    }

    /// The byte offset of line `line`, column `col` (both from 1): the
    /// inverse of [`LineIndex::line_col`]; the start of the text when the
    /// line does not exist, the line's end when the column is past it.
    pub fn offset(&self, line: usize, col: usize) -> usize {
        let Some(&start) = line.checked_sub(1).and_then(|i| self.starts.get(i)) else {
            return 0;
        };
        let end = self.starts.get(line).map_or(self.source.len(), |&e| e - 1);
        let text = &self.source[start..end];
        start
            + text
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(text.len(), |(b, _)| b)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

struct Rendered<'a> {
    d: &'a Diagnostic,
    file: &'a str,
    source: &'a str,
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, col) = self.d.line_col(self.source);
        writeln!(f, "{}:{line}:{col}: error: {}", self.file, self.d.message)?;
        let text = self.source.lines().nth(line - 1).unwrap_or("");
        writeln!(f, "{text}")?;
        // The caret under the span (within its first line), tabs kept so
        // that it lines up.
        let pad: String = text
            .chars()
            .take(col - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let start = floor_char_boundary(self.source, self.d.span.start.min(self.source.len()));
        let end = floor_char_boundary(self.source, self.d.span.end.min(self.source.len()));
        let width = self.source[start..end.max(start)]
            .split('\n')
            .next()
            .map_or(1, |s| s.chars().count().max(1));
        write!(f, "{pad}{}", "~".repeat(width).replacen('~', "^", 1))?;
        if let Some(h) = &self.d.hint {
            write!(f, "\n{h}")?;
        }
        Ok(())
    }
}

/// The candidate closest to `word` by edit distance, when close enough to
/// be a likely typo (for "did you mean …?" hints).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Edit distance with adjacent transpositions counted as one edit
/// (optimal string alignment): `pdi` is one typo away from `pid`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_index_agrees_with_line_col_everywhere() {
        let src = "BEGIN {\n  printf(\"é%d\\n\", 1);\r\n}\n\nEND { }";
        let idx = LineIndex::new(src);
        for at in 0..=src.len() + 2 {
            let lc = Diagnostic::new(Span::new(at, at), "").line_col(src);
            assert_eq!(idx.line_col(at), lc, "byte {at}");
            if src.is_char_boundary(at) {
                assert_eq!(idx.offset(lc.0, lc.1), at, "byte {at}");
            }
        }
        assert_eq!(idx.line(2), "  printf(\"é%d\\n\", 1);");
        assert_eq!(idx.line(5), "END { }");
        assert_eq!(idx.line(6), "");
        assert_eq!(src.lines().nth(1), Some(idx.line(2)));
    }

    #[test]
    fn renders_with_a_caret_under_the_place() {
        let src = "BEGIN {\n  printf(\"%d\\n\", nsec);\n}\n";
        let at = src.find("nsec").unwrap();
        let d = Diagnostic::new(Span::new(at, at + 4), "unknown identifier `nsec`")
            .with_hint("did you mean `nsecs`?");
        assert_eq!(
            d.render("t.bt", src),
            "t.bt:2:18: error: unknown identifier `nsec`\n  printf(\"%d\\n\", nsec);\n                 ^~~~\ndid you mean `nsecs`?"
        );
    }

    #[test]
    fn nearest_names_suggest_typos_only() {
        let names = ["nsecs", "pid", "comm", "kstack"];
        assert_eq!(nearest("nsec", names), Some("nsecs"));
        assert_eq!(nearest("comn", names), Some("comm"));
        assert_eq!(nearest("zzzzzz", names), None);
        assert_eq!(nearest("pdi", names), Some("pid"));
    }
}
