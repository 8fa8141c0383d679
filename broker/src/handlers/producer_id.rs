//! InitProducerId for idempotent producers (transactions come in a later release).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::state::BrokerState;

/// Handles InitProducerId: a new producer id with epoch 0, or (KIP-360) an epoch bump
/// for a producer that presents its current id and epoch.
pub(crate) fn init_producer_id(
    state: &BrokerState,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let out = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // No transaction coordinator yet: a fatal INVALID_REQUEST beats a retriable error the
        // client would retry forever.
        return out.with_error_code(ResponseError::InvalidRequest.code());
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return out
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match state.producer_ids.allocate() {
        Ok(id) => out.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot persist producer id block");
            out.with_error_code(ResponseError::UnknownServerError.code())
        }
    }
}
