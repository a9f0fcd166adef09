import Foundation

/// The switch between a DPDK front-end and the kernel: a daemon with a vhost-user port
/// ("vm", served by dpdk-testpmd in icmpecho mode, which answers ARP and ping for any
/// address) and a kernel port ("kernel": af-packet, or af-xdp) on a veth whose peer sits in a namespace at
/// 10.200.<subnet>.1. Pinging 10.200.<subnet>.2 from the namespace crosses the switch.
public final class KernelPeerRig {
    public let network: NetworkNamespaceFixture
    public let daemon: SwitchDaemonProcess
    public let frontEnd: Testpmd
    public let frontEndMAC: String
    public let guestAddress: String

    /// nil when the environment cannot run it, with the reason printed.
    public static func skipReason(_ test: String = #function) -> String? {
        if let reason = IntegrationEnvironment.printedSkipReason(test) { return reason }
        if let reason = NetworkNamespaceFixture.skipReason() {
            print("[skip] \(test): \(reason)")
            return reason
        }
        return nil
    }

    /// `kernelPort` is the kernel port's JSON after its name, e.g. `"type": "af-xdp", "mode":
    /// "native"` (the interface is added); af-packet by default.
    public init(tag: String, subnet: Int, prefix: String = "vst", kernelPort: String = #""type": "af-packet""#) throws {
        network = try NetworkNamespaceFixture(tag: tag, prefix: prefix)
        try network.assignAddress("10.200.\(subnet).1/24")
        guestAddress = "10.200.\(subnet).2"
        frontEndMAC = String(format: "02:00:00:00:%02x:02", subnet)
        let config = """
        {"ports": [
          {"name": "vm", "type": "vhost-user", "socket": {"path": "vm.sock"}},
          {"name": "kernel", \(kernelPort), "interface": "\(network.hostInterface)"}
        ]}
        """
        daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-cpus", "1"])
        try daemon.waitForFile(daemon.socketPath("vm.sock"))
        frontEnd = try Testpmd.frontEnd(sockets: [daemon.socketPath("vm.sock")], macs: [frontEndMAC],
                                        cpu: 0, forwardMode: "icmpecho", burst: 32)
        try frontEnd.waitForLinkUp(ports: [0])
        try daemon.waitForLog("device ready")
        try frontEnd.start()
    }

    /// Pings the front-end from the namespace.
    public func ping(count: Int = 3) throws -> (status: Int32, output: String) {
        try network.inside(["ping", "-c", "\(count)", "-i", "0.2", "-W", "2", guestAddress], check: false)
    }

    public func tearDown() {
        frontEnd.quit()
        daemon.stop()
        network.destroy()
    }
}
