//! Lowering parsed calls to the IR: the block forms (`Sequential`, `Add`, `Concat`,
//! `Residual`) and `Graph` DAGs, with every module's source position; layers themselves are
//! bound in `layers.rs`.

use super::ir::*;
use super::layers::{bind_layer, layer_params, LAYERS};
use super::syntax::{Arg, Expr, Span};
use super::LangError;

/// Block forms: their children are modules (`Graph` takes `name = ...` node definitions).
pub(crate) const BLOCKS: &[&str] = &["Sequential", "Residual", "Add", "Concat", "Graph"];

/// The joins of a `Graph` node (`name = Sum(...)`, `name = Concat(...)`).
pub(crate) const JOINS: &[&str] = &["Sum", "Concat"];

/// The module prefixes code models write before layer and block names (`nn.Conv2d`).
pub(crate) const PREFIXES: &[&str] = &["torch.nn.", "nn.", "torchvision.ops.", "ops."];

/// Strips a module prefix (`nn.`, `torch.nn.`, `torchvision.ops.`).
fn base_name(name: &str) -> &str {
    PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name)
}

fn unknown_layer(name: &str, span: Span) -> LangError {
    let known: Vec<&str> = LAYERS
        .iter()
        .map(|(n, _)| *n)
        .chain(BLOCKS.iter().copied())
        .collect();
    let close = known.iter().find(|k| {
        k.eq_ignore_ascii_case(name) || k.to_lowercase() == name.to_lowercase().replace('_', "")
    });
    let hint = match close {
        Some(k) => format!("did you mean `{k}`?"),
        None if name == "Sum" => {
            "`Sum(...)` joins edges only inside `Graph(...)`; elsewhere, sum branches with `Add(...)`"
                .into()
        }
        None => format!("known layers: {}", known.join(", ")),
    };
    LangError::at(span, format!("unknown layer `{name}`")).with_hint(&hint)
}

/// Converts parsed expressions to modules, recording each module's span in pre-order.
pub(crate) struct Binder {
    pub spans: Vec<Span>,
}

impl Binder {
    pub fn module(&mut self, expr: &Expr) -> Result<Module, LangError> {
        let Expr::Call {
            name,
            args,
            inputs,
            span,
        } = expr
        else {
            return Err(LangError::at(
                expr.span(),
                "expected a layer such as `Conv2d(...)` or a block such as `Sequential(...)`"
                    .into(),
            ));
        };
        if inputs.is_some() {
            return Err(LangError::at(
                *span,
                "a module is applied to a node (`Conv2d(...)(x)`) only inside `Graph(...)`".into(),
            ));
        }
        let name = base_name(name);
        self.spans.push(*span);
        match name {
            "Sequential" | "Add" | "Concat" | "Residual" => self.block(name, args, *span),
            "Graph" => self.graph(args, *span),
            _ => {
                let params = layer_params(name).ok_or_else(|| unknown_layer(name, *span))?;
                Ok(Module::Layer(bind_layer(name, params, args, *span)?))
            }
        }
    }

    fn block(&mut self, name: &str, args: &[Arg], span: Span) -> Result<Module, LangError> {
        let mut children = Vec::new();
        let mut shortcut = None;
        // `Residual` lowers to Add(Sequential(body...), shortcut): the Sequential is spanned
        // with the Residual itself, right after it in pre-order.
        if name == "Residual" {
            self.spans.push(span);
        }
        for arg in args {
            match &arg.keyword {
                None => children.push(self.module(&arg.value)?),
                Some((k, at)) if k == "shortcut" && name == "Residual" => {
                    if shortcut.replace(&arg.value).is_some() {
                        return Err(LangError::at(*at, "`Residual` got `shortcut` twice".into()));
                    }
                }
                Some((k, at)) => {
                    return Err(
                        LangError::at(*at, format!("`{name}` takes modules, not `{k}=`"))
                            .with_hint(if name == "Residual" {
                                "the only keyword of `Residual` is `shortcut=`"
                            } else {
                                "list the modules separated by commas"
                            }),
                    )
                }
            }
        }
        if children.is_empty() && name != "Sequential" {
            return Err(LangError::at(
                span,
                format!("`{name}` needs at least one module"),
            ));
        }
        Ok(match name {
            "Sequential" => Module::Sequential(children),
            "Add" => Module::Parallel {
                join: Join::Sum,
                branches: children,
            },
            "Concat" => Module::Parallel {
                join: Join::Concat,
                branches: children,
            },
            _ => {
                let shortcut = match shortcut {
                    Some(e) => self.module(e)?,
                    None => {
                        self.spans.push(span);
                        Module::Layer(Layer::Identity)
                    }
                };
                Module::Parallel {
                    join: Join::Sum,
                    branches: vec![Module::Sequential(children), shortcut],
                }
            }
        })
    }

    fn graph(&mut self, args: &[Arg], span: Span) -> Result<Module, LangError> {
        let mut nodes: Vec<Node> = Vec::new();
        for arg in args {
            let Some((name, at)) = &arg.keyword else {
                return Err(LangError::at(
                    arg.value.span(),
                    "`Graph` takes node definitions `name = Sum(Conv2d(...)(input), ...)`".into(),
                ));
            };
            if name == GRAPH_INPUT || nodes.iter().any(|n| &n.name == name) {
                return Err(LangError::at(
                    *at,
                    format!("node name `{name}` is already taken"),
                ));
            }
            let (join, edge_exprs): (Join, Vec<&Expr>) = match &arg.value {
                Expr::Call {
                    name: j,
                    args,
                    inputs: None,
                    ..
                } if JOINS.contains(&base_name(j)) => {
                    if let Some(a) = args.iter().find(|a| a.keyword.is_some()) {
                        return Err(LangError::at(
                            a.value.span(),
                            "a join takes edges, not keywords".into(),
                        ));
                    }
                    let join = if base_name(j) == "Sum" {
                        Join::Sum
                    } else {
                        Join::Concat
                    };
                    (join, args.iter().map(|a| &a.value).collect())
                }
                other => (Join::Sum, vec![other]),
            };
            let mut edges = Vec::new();
            for e in edge_exprs {
                edges.push(self.edge(e, &nodes)?);
            }
            if edges.is_empty() {
                return Err(LangError::at(*at, format!("node `{name}` has no edges"))
                    .with_hint("use `Zero()(input)` for a node that is always zero"));
            }
            nodes.push(Node {
                name: name.clone(),
                join,
                edges,
            });
        }
        if nodes.is_empty() {
            return Err(LangError::at(
                span,
                "`Graph` needs at least one node".into(),
            ));
        }
        Ok(Module::Graph(Graph { nodes }))
    }

    fn edge(&mut self, expr: &Expr, nodes: &[Node]) -> Result<Edge, LangError> {
        let check_source = |source: &str, at: Span| {
            if source == GRAPH_INPUT || nodes.iter().any(|n| n.name == source) {
                Ok(source.to_string())
            } else {
                Err(LangError::at(at, format!("unknown node `{source}`"))
                    .with_hint("an edge reads `input` or a node defined before it"))
            }
        };
        match expr {
            Expr::Name(source, at) => {
                let from = check_source(source, *at)?;
                self.spans.push(*at);
                Ok(Edge {
                    from,
                    module: Module::Layer(Layer::Identity),
                })
            }
            Expr::Call {
                name,
                args,
                inputs: Some(inputs),
                span,
            } => {
                let [Expr::Name(source, at)] = inputs.as_slice() else {
                    return Err(LangError::at(*span, "an edge applies a module to exactly one node, e.g. `Conv2d(16, 16, 3)(x1)`".into()));
                };
                let from = check_source(source, *at)?;
                let module = self.module(&Expr::Call {
                    name: name.clone(),
                    args: args.clone(),
                    inputs: None,
                    span: *span,
                })?;
                Ok(Edge { from, module })
            }
            other => Err(LangError::at(
                other.span(),
                "expected an edge: a node name or `Module(...)(node)`".into(),
            )),
        }
    }
}
