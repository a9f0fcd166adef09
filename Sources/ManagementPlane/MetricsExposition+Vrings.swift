import PortService
import Virtio

/// Per-vring counters and the rx-queue placement of each poll thread (like OVS's
/// pmd-rxq-show), derived from the ring counter table: each port family
/// `vhost_switch_port_X` / `vhost_switch_ring_X` has a `vhost_switch_vring_X` twin labelled
/// with the vring. The port families stay the sums, so `sum()` queries never count twice.
extension MetricsExposition {
    static func vringFamilyName(_ portFamily: String) -> String {
        for prefix in ["vhost_switch_port_", "vhost_switch_ring_"] where portFamily.hasPrefix(prefix) {
            return "vhost_switch_vring_" + portFamily.dropFirst(prefix.count)
        }
        return "vhost_switch_vring_" + portFamily
    }

    static func addVringMetrics(_ statistics: SwitchStatistics, to metrics: Builder) {
        for counter in VirtqueueStatisticsSnapshot.counters {
            metrics.declare(vringFamilyName(counter.metric.name), "counter", counter.metric.help + " Per vring.")
        }
        for port in statistics.ports {
            for vring in port.vrings {
                // Odd vrings are the guest's transmit rings: what the switch takes (rx).
                let labels = [("port", port.name), ("vring", String(vring.index)), ("direction", vring.index % 2 == 1 ? "rx" : "tx")]
                for counter in VirtqueueStatisticsSnapshot.counters {
                    metrics.add(vringFamilyName(counter.metric.name), "counter", "",
                                labels + counter.labels.map { ($0.name, $0.value) }, vring.counters[keyPath: counter.field])
                }
            }
        }
        metrics.declare("vhost_switch_pmd_rxq", "gauge", "1 for each receive queue a poll thread serves (rx-queue placement).")
        for thread in statistics.pollThreads {
            for queue in thread.queues {
                metrics.add("vhost_switch_pmd_rxq", "gauge", "",
                            [("thread", String(thread.index)), ("port", queue.portName), ("vring", String(queue.vringIndex))], 1)
            }
        }
    }
}
