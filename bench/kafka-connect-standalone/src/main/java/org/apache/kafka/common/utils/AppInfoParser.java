package org.apache.kafka.common.utils;

/**
 * Compatibility shim, for the benchmark only: connect-file is not published for Kafka 4.4.0 (Maven
 * Central stops at 4.3.1), and 4.3.1's FileStreamSourceConnector.version() calls
 * {@code org.apache.kafka.common.utils.AppInfoParser.getVersion()}, which kafka-clients 4.4.0 moved
 * to {@code org.apache.kafka.common.utils.internals}. Without this class the worker fails to create
 * the connector (NoClassDefFoundError). The connector and its task are otherwise 4.3.1's unchanged.
 */
public final class AppInfoParser {
    public static String getVersion() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getVersion();
    }

    public static String getCommitId() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getCommitId();
    }

    private AppInfoParser() {}
}
