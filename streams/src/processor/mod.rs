//! The Processor API: custom processors with state stores, record context and
//! punctuation, and the type-erased node interface the DSL compiles to.

mod context;

use std::marker::PhantomData;

pub(crate) use context::{now_ms, set_time_cell, Ctx, OutRecord, Schedule, TaskShared};
pub use context::{ProcessorContext, PunctuationType, ScheduleId};

use crate::error::StreamsError;
use crate::record::{Data, DynRecord, Record};

/// A custom processor: receives records of `(KIn, VIn)` and may forward
/// `(KOut, VOut)` records to its children.
pub trait Processor<KIn, VIn, KOut, VOut>: Send + 'static {
    /// Called once when the task starts; fetch stores and schedule punctuations here.
    fn init(
        &mut self,
        _ctx: &mut ProcessorContext<'_, '_, KOut, VOut>,
    ) -> Result<(), StreamsError> {
        Ok(())
    }
    /// Handles one record.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<(), StreamsError>;
    /// A scheduled punctuation fired at `timestamp` (stream time or wall-clock time).
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, '_, KOut, VOut>,
        _schedule: ScheduleId,
        _timestamp: i64,
    ) -> Result<(), StreamsError> {
        Ok(())
    }
    /// Called when the task closes.
    fn close(&mut self) {}
}

/// The erased interface every graph node implements.
pub(crate) trait Node: Send {
    fn init(&mut self, _ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        Ok(())
    }
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError>;
    fn punctuate(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _id: ScheduleId,
        _ts: i64,
    ) -> Result<(), StreamsError> {
        Ok(())
    }
    /// Commit time: emit what a cache held back.
    fn flush(&mut self, _ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        Ok(())
    }
    fn close(&mut self) {}
}

/// Adapts a typed [`Processor`] to a graph node.
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub inner: P,
    pub _t: PhantomData<fn(KIn, VIn, KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> Node for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: Data,
    VIn: Data,
    KOut: Data,
    VOut: Data,
{
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.inner.init(&mut ProcessorContext::new(ctx))
    }
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        self.inner
            .process(&mut ProcessorContext::new(ctx), rec.typed::<KIn, VIn>())
    }
    fn punctuate(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ScheduleId,
        ts: i64,
    ) -> Result<(), StreamsError> {
        self.inner
            .punctuate(&mut ProcessorContext::new(ctx), id, ts)
    }
    fn close(&mut self) {
        self.inner.close()
    }
}

/// A node made of a closure over typed records; most stateless DSL operators.
pub(crate) struct FnNode<F, KIn, VIn> {
    pub f: F,
    pub _t: PhantomData<fn(KIn, VIn)>,
}

impl<F, KIn, VIn> Node for FnNode<F, KIn, VIn>
where
    F: FnMut(&mut Ctx<'_>, Record<KIn, VIn>) + Send,
    KIn: Data,
    VIn: Data,
{
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        (self.f)(ctx, rec.typed::<KIn, VIn>());
        Ok(())
    }
}

pub(crate) fn fn_node<KIn: Data, VIn: Data, F>(f: F) -> Box<dyn Node>
where
    F: FnMut(&mut Ctx<'_>, Record<KIn, VIn>) + Send + 'static,
{
    Box::new(FnNode { f, _t: PhantomData })
}
