//! Deleting a consumer group's committed offsets for some partitions
//! (Kafka's OffsetDelete, KIP-496), which `PATCH /connectors/{name}/offsets`
//! needs for `"offset": null` on a sink partition. librdkafka implements it
//! (`rd_kafka_DeleteConsumerGroupOffsets`) but the rdkafka crate does not
//! wrap it, so this calls it directly.

use std::ffi::{c_char, CStr, CString};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rdsys;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// Deletes the committed offsets of `partitions` in `group`. The group must
/// have no members (the broker answers GROUP_SUBSCRIBED_TO_TOPIC otherwise).
/// Blocking: call from a blocking thread.
pub(crate) fn delete_group_offsets(
    bootstrap: &str,
    group: &str,
    partitions: &[(String, i32)],
    timeout: Duration,
) -> Result<(), String> {
    if partitions.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let group_name = CString::new(group).map_err(|_| format!("invalid group name {group:?}"))?;
    let topics = partitions
        .iter()
        .map(|(t, _)| CString::new(t.as_str()).map_err(|_| format!("invalid topic name {t:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let count = i32::try_from(partitions.len()).map_err(|_| "too many partitions".to_string())?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let rk = admin.inner().native_ptr();
    // SAFETY: every pointer handed to librdkafka is valid for the call: `rk`
    // while `admin` lives (to the end of this function), the C strings and
    // the partition list while they are in scope. librdkafka copies the list
    // into the request object and the request object into the operation, so
    // both are destroyed right after use; the event and queue are destroyed
    // once, after their results were read.
    unsafe {
        let list = rdsys::rd_kafka_topic_partition_list_new(count);
        for ((_, partition), topic) in partitions.iter().zip(&topics) {
            rdsys::rd_kafka_topic_partition_list_add(list, topic.as_ptr(), *partition);
        }
        let mut request = rdsys::rd_kafka_DeleteConsumerGroupOffsets_new(group_name.as_ptr(), list);
        rdsys::rd_kafka_topic_partition_list_destroy(list);
        let queue = rdsys::rd_kafka_queue_new(rk);
        rdsys::rd_kafka_DeleteConsumerGroupOffsets(rk, &mut request, 1, std::ptr::null(), queue);
        rdsys::rd_kafka_DeleteConsumerGroupOffsets_destroy(request);
        let event = rdsys::rd_kafka_queue_poll(queue, timeout_ms);
        let result = if event.is_null() {
            Err(format!("no answer within {} ms", timeout.as_millis()))
        } else {
            read_result(event)
        };
        if !event.is_null() {
            rdsys::rd_kafka_event_destroy(event);
        }
        rdsys::rd_kafka_queue_destroy(queue);
        result.map_err(|e| format!("deleting offsets of group {group}: {e}"))
    }
}

/// The first error of a DeleteConsumerGroupOffsets result event, if any.
///
/// # Safety
/// `event` must be a live DeleteConsumerGroupOffsets result event.
unsafe fn read_result(event: *mut rdsys::rd_kafka_event_t) -> Result<(), String> {
    if rdsys::rd_kafka_event_error(event) != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    {
        return Err(text(rdsys::rd_kafka_event_error_string(event)));
    }
    let result = rdsys::rd_kafka_event_DeleteConsumerGroupOffsets_result(event);
    if result.is_null() {
        return Err("unexpected admin result".into());
    }
    let mut groups = 0usize;
    let first = rdsys::rd_kafka_DeleteConsumerGroupOffsets_result_groups(result, &mut groups);
    for i in 0..groups {
        let group = *first.add(i);
        let error = rdsys::rd_kafka_group_result_error(group);
        if !error.is_null() {
            return Err(text(rdsys::rd_kafka_error_string(error)));
        }
        let list = rdsys::rd_kafka_group_result_partitions(group);
        if list.is_null() {
            continue;
        }
        let count = usize::try_from((*list).cnt).unwrap_or(0);
        for j in 0..count {
            let partition = &*(*list).elems.add(j);
            if partition.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(format!(
                    "{}-{}: {}",
                    text(partition.topic),
                    partition.partition,
                    text(rdsys::rd_kafka_err2str(partition.err))
                ));
            }
        }
    }
    Ok(())
}

/// A C string from librdkafka as text (empty for NULL).
///
/// # Safety
/// `s` must be NULL or a valid NUL-terminated string.
unsafe fn text(s: *const c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        CStr::from_ptr(s).to_string_lossy().into_owned()
    }
}
