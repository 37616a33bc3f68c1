//! The repetitions of a benchmark that measures one gateway/baseline pair.

use crate::Env;
use crate::err::Result;
use crate::publish::pair;
use crate::stats::Rep;

/// `env.reps` repetitions of [`pair`], in order, stopping at the first
/// error: the loop every plain gateway-versus-baseline benchmark runs.
pub async fn pairs<G, B>(env: &Env, id: &str, gateway: G, baseline: B) -> Result<Vec<Rep>>
where
    G: AsyncFn() -> Result<crate::stats::Sample>,
    B: AsyncFn() -> Result<crate::stats::Sample>,
{
    let mut reps = Vec::new();
    for rep in 0..env.reps {
        reps.push(
            pair(
                env,
                id,
                rep,
                async || gateway().await,
                async || baseline().await,
            )
            .await?,
        );
    }
    Ok(reps)
}
