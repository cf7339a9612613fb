//! Tokens and the generic call syntax of the language (before any layer is known).
//!
//! ```text
//! program  := { import-line } [ NAME '=' ] expr
//! expr     := call [ '(' [ expr { ',' expr } [','] ] ')' ]     (a call applied to inputs)
//!           | NAME | number | string | True | False | None | tuple | '(' expr ')'
//! call     := NAME '(' [ arg { ',' arg } [','] ] ')'          (NAME may be dotted: nn.Conv2d)
//! arg      := [ NAME '=' ] expr
//! tuple    := '(' [ expr ',' [ expr { ',' expr } [','] ] ] ')' | '[' [ expr { ',' expr } [','] ] ']'
//! ```

use super::LangError;

/// A position in the source text (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// Line, from 1.
    pub line: usize,
    /// Column (in characters), from 1.
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Open(char),
    Close(char),
    Comma,
    Equals,
    End,
}

fn describe(token: &Token) -> String {
    match token {
        Token::Name(n) => format!("`{n}`"),
        Token::Int(i) => format!("`{i}`"),
        Token::Float(f) => format!("`{f}`"),
        Token::Str(s) => format!("'{s}'"),
        Token::Open(c) | Token::Close(c) => format!("`{c}`"),
        Token::Comma => "`,`".into(),
        Token::Equals => "`=`".into(),
        Token::End => "the end of the text".into(),
    }
}

fn tokenize(text: &str) -> Result<Vec<(Token, Span)>, LangError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0, 1, 1);
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize| {
        if chars[*i] == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        let span = Span { line, column: col };
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col);
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                advance(&mut i, &mut line, &mut col);
            }
            continue;
        }
        let single = match c {
            '(' | '[' => Some(Token::Open(c)),
            ')' | ']' => Some(Token::Close(c)),
            ',' => Some(Token::Comma),
            '=' => Some(Token::Equals),
            _ => None,
        };
        if let Some(token) = single {
            out.push((token, span));
            advance(&mut i, &mut line, &mut col);
            continue;
        }
        let start = i;
        if c.is_alphabetic() || c == '_' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                advance(&mut i, &mut line, &mut col);
            }
            out.push((Token::Name(chars[start..i].iter().collect()), span));
        } else if c.is_ascii_digit() || ((c == '-' || c == '.') && i + 1 < chars.len()) {
            advance(&mut i, &mut line, &mut col);
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '_'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                advance(&mut i, &mut line, &mut col);
            }
            let word: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
            let token = if let Ok(v) = word.parse::<i64>() {
                Token::Int(v)
            } else if let Ok(v) = word.parse::<f64>() {
                Token::Float(v)
            } else {
                return Err(LangError::at(span, format!("`{word}` is not a number")));
            };
            out.push((token, span));
        } else if c == '\'' || c == '"' {
            advance(&mut i, &mut line, &mut col);
            while i < chars.len() && chars[i] != c && chars[i] != '\n' {
                advance(&mut i, &mut line, &mut col);
            }
            if i >= chars.len() || chars[i] != c {
                return Err(LangError::at(span, "unterminated string".into()));
            }
            out.push((Token::Str(chars[start + 1..i].iter().collect()), span));
            advance(&mut i, &mut line, &mut col);
        } else {
            return Err(LangError::at(span, format!("unexpected character `{c}`"))
                .with_hint("the language has calls like `Conv2d(3, 16, 3, padding=1)`, numbers, 'strings', `,`, `=`, brackets and # comments"));
        }
    }
    out.push((Token::End, Span { line, column: col }));
    Ok(out)
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// `Name(args)` or `Name(args)(inputs)`.
    Call {
        name: String,
        args: Vec<Arg>,
        inputs: Option<Vec<Expr>>,
        span: Span,
    },
    /// A bare name (`True`, `None`, a node name).
    Name(String, Span),
    Int(i64, Span),
    Float(f64, Span),
    Str(String, Span),
    Tuple(Vec<Expr>, Span),
}

impl Expr {
    pub(crate) fn span(&self) -> Span {
        match self {
            Expr::Call { span, .. }
            | Expr::Name(_, span)
            | Expr::Int(_, span)
            | Expr::Float(_, span)
            | Expr::Str(_, span)
            | Expr::Tuple(_, span) => *span,
        }
    }
}

/// A positional (`keyword == None`) or keyword argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arg {
    pub keyword: Option<(String, Span)>,
    pub value: Expr,
}

struct Parser {
    tokens: Vec<(Token, Span)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos].0
    }

    fn peek_at(&self, offset: usize) -> &Token {
        let i = (self.pos + offset).min(self.tokens.len() - 1);
        &self.tokens[i].0
    }

    fn span(&self) -> Span {
        self.tokens[self.pos].1
    }

    fn next(&mut self) -> (Token, Span) {
        let t = self.tokens[self.pos].clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, expected: &str) -> LangError {
        LangError::at(
            self.span(),
            format!("expected {expected}, found {}", describe(self.peek())),
        )
    }

    fn expr(&mut self) -> Result<Expr, LangError> {
        let (token, span) = self.next();
        match token {
            Token::Int(v) => Ok(Expr::Int(v, span)),
            Token::Float(v) => Ok(Expr::Float(v, span)),
            Token::Str(s) => Ok(Expr::Str(s, span)),
            Token::Open(open) => {
                let close = if open == '(' { ')' } else { ']' };
                let mut items = self.list(close, Self::expr)?;
                // As in Python, `(x)` is `x` itself; `(x,)` and `[x]` are sequences.
                let trailing_comma = self.tokens[self.pos - 2].0 == Token::Comma;
                if open == '(' && items.len() == 1 && !trailing_comma {
                    return Ok(items.pop().expect("one item"));
                }
                Ok(Expr::Tuple(items, span))
            }
            Token::Name(name) if *self.peek() == Token::Open('(') => {
                self.next();
                let args = self.list(')', Self::arg)?;
                let inputs = if *self.peek() == Token::Open('(') {
                    self.next();
                    Some(self.list(')', Self::expr)?)
                } else {
                    None
                };
                Ok(Expr::Call {
                    name,
                    args,
                    inputs,
                    span,
                })
            }
            Token::Name(name) => Ok(Expr::Name(name, span)),
            other => {
                self.pos -= usize::from(other != Token::End);
                Err(self.unexpected("a layer, a number or a name"))
            }
        }
    }

    fn arg(&mut self) -> Result<Arg, LangError> {
        if let (Token::Name(name), Token::Equals) = (self.peek().clone(), self.peek_at(1)) {
            let span = self.span();
            self.next();
            self.next();
            return Ok(Arg {
                keyword: Some((name, span)),
                value: self.expr()?,
            });
        }
        Ok(Arg {
            keyword: None,
            value: self.expr()?,
        })
    }

    /// Items separated by commas up to `close` (the opening bracket is consumed).
    fn list<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, LangError>,
    ) -> Result<Vec<T>, LangError> {
        let mut items = Vec::new();
        loop {
            if *self.peek() == Token::Close(close) {
                self.next();
                return Ok(items);
            }
            items.push(item(self)?);
            match self.peek() {
                Token::Comma => {
                    self.next();
                }
                Token::Close(c) if *c == close => {}
                _ => return Err(self.unexpected(&format!("`,` or `{close}`"))),
            }
        }
    }
}

/// Parses a whole program: optional `import`/`from` lines, an optional `name =`, one expression.
pub(crate) fn parse_program(text: &str) -> Result<Expr, LangError> {
    let kept: String = text
        .lines()
        .map(|line| {
            let t = line.trim_start();
            if t.starts_with("import ") || t.starts_with("from ") {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut parser = Parser {
        tokens: tokenize(&kept)?,
        pos: 0,
    };
    if *parser.peek() == Token::End {
        return Err(
            LangError::at(parser.span(), "the text holds no architecture".into())
                .with_hint("write one expression such as `Sequential(Conv2d(3, 16, 3), ...)`"),
        );
    }
    if matches!(parser.peek(), Token::Name(_)) && *parser.peek_at(1) == Token::Equals {
        parser.next();
        parser.next();
    }
    let expr = parser.expr()?;
    if *parser.peek() != Token::End {
        return Err(parser.unexpected("the end of the architecture").with_hint(
            "a program is a single expression; wrap several layers in `Sequential(...)`",
        ));
    }
    Ok(expr)
}
