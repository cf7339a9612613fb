//! LM-Searcher's transformer space: an embedding width, a number of decoder layers, and per layer
//! an FFN hidden size and a number of attention heads.
//!
//! The code layout of a [`TransformerSpace`] with `L` = the largest allowed number of layers is
//!
//! | position | dimension          | choices                           |
//! |----------|--------------------|-----------------------------------|
//! | 0        | `embed_dim`        | [`TransformerSpace::embed_dims`]  |
//! | 1        | `layers`           | [`TransformerSpace::num_layers`]  |
//! | 2 + 2l   | `layer{l}_hidden`  | [`TransformerSpace::hidden_dims`] |
//! | 3 + 2l   | `layer{l}_heads`   | [`TransformerSpace::heads`]       |
//!
//! for `l` in `0..L` (layers are numbered from 0). The dimensions of layer `l` are conditional:
//! active only when the chosen number of layers exceeds `l`, so a canonical code holds 0 at every
//! position of an unused layer.
//!
//! ```
//! use arch_space::transformer::TransformerSpace;
//!
//! let tf = TransformerSpace::default();
//! let space = tf.space().unwrap();
//! let code = space.parse("11210000000000").unwrap();
//! let shape = tf.decode(&code).unwrap();
//! assert_eq!(shape.embed_dim, 640);
//! assert_eq!(shape.layers.len(), 2);
//! assert_eq!((shape.layers[0].hidden_dim, shape.layers[0].heads), (3072, 8));
//! assert_eq!(tf.encode(&shape).unwrap(), code);
//! ```

use ncode::{Dimension, NCode, SearchSpace};
use serde::{Deserialize, Serialize};

use crate::choices::{check_choices, choice_index};
use crate::ArchSpaceError;

/// One decoder layer of a [`TransformerShape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerShape {
    /// Hidden size of the feed-forward network.
    pub hidden_dim: u32,
    /// Number of attention heads (divides the embedding width).
    pub heads: u32,
}

/// A decoded transformer: its embedding width and its decoder layers (only those in use).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransformerShape {
    /// Model (embedding) width.
    pub embed_dim: u32,
    /// The decoder layers, input side first.
    pub layers: Vec<LayerShape>,
}

impl TransformerShape {
    /// Number of parameters with a vocabulary of `vocab` tokens.
    ///
    /// With `E` = `embed_dim`, `V` = `vocab` and `H` = a layer's `hidden_dim`, the count is
    ///
    /// `V*E + sum over layers of (4*E^2 + 2*E*H + 9*E + H)`
    ///
    /// where each pre-LN decoder layer has
    /// * self-attention: q, k, v and output projections, `E x E` with biases: `4*(E^2 + E)`;
    /// * FFN: `E -> H -> E` with biases: `(E*H + H) + (H*E + E)`;
    /// * two LayerNorms with weight and bias: `2*(2*E)`.
    ///
    /// The head count does not change the count. Not counted: positional embeddings, a final
    /// LayerNorm and the output head (assumed tied to the token embedding). Saturates at
    /// `u64::MAX`.
    pub fn params(&self, vocab: usize) -> u64 {
        let e = u128::from(self.embed_dim);
        let layers: u128 = self
            .layers
            .iter()
            .map(|l| {
                let h = u128::from(l.hidden_dim);
                4 * e * e + 2 * e * h + 9 * e + h
            })
            .sum();
        let total = (vocab as u128).saturating_mul(e).saturating_add(layers);
        u64::try_from(total).unwrap_or(u64::MAX)
    }
}

/// The choices of a transformer space (see the [module documentation](self) for the code layout).
///
/// Every list must be non-empty and free of repeats, numbers must be positive, and every head
/// count must divide every embedding width. [`Default`] is LM-Searcher's space: embedding 512 or
/// 640, 1 to 6 layers, FFN hidden size 1024, 2048 or 3072, and 4 or 8 heads. Missing fields in
/// a serialized configuration take their default values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransformerSpace {
    /// Allowed embedding widths.
    pub embed_dims: Vec<u32>,
    /// Allowed numbers of decoder layers.
    pub num_layers: Vec<usize>,
    /// Allowed FFN hidden sizes.
    pub hidden_dims: Vec<u32>,
    /// Allowed numbers of attention heads.
    pub heads: Vec<u32>,
}

impl Default for TransformerSpace {
    fn default() -> Self {
        TransformerSpace {
            embed_dims: vec![512, 640],
            num_layers: vec![1, 2, 3, 4, 5, 6],
            hidden_dims: vec![1024, 2048, 3072],
            heads: vec![4, 8],
        }
    }
}

impl TransformerSpace {
    /// The search space, named `transformer`; fails with [`ArchSpaceError::Config`] on an empty
    /// or repeating choice list, a zero number, or a head count that does not divide an
    /// embedding width.
    pub fn space(&self) -> Result<SearchSpace, ArchSpaceError> {
        check_choices("embed_dims", &self.embed_dims)?;
        check_choices("num_layers", &self.num_layers)?;
        check_choices("hidden_dims", &self.hidden_dims)?;
        check_choices("heads", &self.heads)?;
        if self.embed_dims.contains(&0)
            || self.num_layers.contains(&0)
            || self.hidden_dims.contains(&0)
            || self.heads.contains(&0)
        {
            return Err(ArchSpaceError::Config(
                "embedding widths, numbers of layers, hidden sizes and heads must be positive"
                    .into(),
            ));
        }
        for &e in &self.embed_dims {
            if let Some(h) = self.heads.iter().find(|&&h| e % h != 0) {
                return Err(ArchSpaceError::Config(format!(
                    "{h} heads do not divide the embedding width {e}"
                )));
            }
        }
        let ints = |values: &[u32]| values.iter().map(|&v| i64::from(v)).collect::<Vec<_>>();
        let max_layers = self.num_layers.iter().copied().max().unwrap_or(0);
        let mut dims = vec![
            Dimension::ints("embed_dim", ints(&self.embed_dims)),
            Dimension::ints("layers", self.num_layers.iter().map(|&n| n as i64)),
        ];
        for l in 0..max_layers {
            let active: Vec<usize> = (0..self.num_layers.len())
                .filter(|&i| self.num_layers[i] > l)
                .collect();
            dims.push(
                Dimension::ints(format!("layer{l}_hidden"), ints(&self.hidden_dims))
                    .active_when(1, active.clone()),
            );
            dims.push(
                Dimension::ints(format!("layer{l}_heads"), ints(&self.heads))
                    .active_when(1, active),
            );
        }
        Ok(SearchSpace::new("transformer", dims)?)
    }

    /// The shape a code denotes; fails when the code does not fit [`TransformerSpace::space`].
    /// Inactive positions are ignored, so a non-canonical code decodes like its canonical form.
    pub fn decode(&self, code: &NCode) -> Result<TransformerShape, ArchSpaceError> {
        self.space()?.check(code)?;
        let layers = (0..self.num_layers[code.index(1)])
            .map(|l| LayerShape {
                hidden_dim: self.hidden_dims[code.index(2 + 2 * l)],
                heads: self.heads[code.index(3 + 2 * l)],
            })
            .collect();
        Ok(TransformerShape {
            embed_dim: self.embed_dims[code.index(0)],
            layers,
        })
    }

    /// The canonical code of a shape; fails with [`ArchSpaceError::Config`], naming the layer and
    /// the value, when a value is not among the choices.
    pub fn encode(&self, shape: &TransformerShape) -> Result<NCode, ArchSpaceError> {
        let space = self.space()?;
        let mut code = NCode::zeros(space.len());
        code.set(
            0,
            choice_index("embedding width", &self.embed_dims, &shape.embed_dim)?,
        );
        code.set(
            1,
            choice_index("number of layers", &self.num_layers, &shape.layers.len())?,
        );
        for (l, layer) in shape.layers.iter().enumerate() {
            let hidden = choice_index(
                &format!("layer {l}: hidden size"),
                &self.hidden_dims,
                &layer.hidden_dim,
            )?;
            let heads = choice_index(&format!("layer {l}: heads"), &self.heads, &layer.heads)?;
            code.set(2 + 2 * l, hidden);
            code.set(3 + 2 * l, heads);
        }
        Ok(code)
    }
}
