import CVhostShims
import Glibc

/// What the AF_XDP sockets of one interface share: the UMEM (one per interface, a slot of
/// 2 x ringSize chunks per queue), the XSKMAP, our redirect program and the bpf link that
/// attaches it. The program stays attached exactly as long as this object (its link fd):
/// the sockets hold it, so it goes with the last of them.
final class XDPAttachment: @unchecked Sendable {  // immutable after init but for `registrationDescriptor`, set once by the first socket
    let interfaceName: String
    let interfaceIndex: Int32
    let mtu: Int
    /// native or generic (what auto became).
    let mode: XDPSocket.AttachMode
    let configuration: XDPSocket.Configuration
    let umem: MemoryMapping
    let map: FileDescriptor
    private let program: FileDescriptor
    private let link: FileDescriptor
    /// The socket the UMEM is registered on (the first queue's); the others bind sharing it.
    var registrationDescriptor: Int32 = -1

    /// Checks the configuration and the interface, makes the UMEM and the map, loads the
    /// program and attaches it in the configured mode (auto: native, then generic).
    init(interface: String, configuration: XDPSocket.Configuration) throws(XDPSocket.Failure) {
        let size = configuration.ringSize
        guard size >= 64, size <= 32768, size & (size - 1) == 0,
              configuration.frameSize >= 2048, configuration.frameSize <= 65536,
              configuration.frameSize & (configuration.frameSize - 1) == 0,
              configuration.queueCount >= 1, configuration.queueCount <= 64,
              configuration.queue <= 1024 else {
            throw XDPSocket.Failure(.invalidConfiguration, SystemError("XDPSocket configuration", errno: EINVAL))
        }
        guard let index = NetworkInterface.index(named: interface) else {
            throw XDPSocket.Failure(.noSuchInterface, SystemError("if_nametoindex(\(interface))", errno: ENODEV))
        }
        do { mtu = try NetworkInterface.mtu(of: interface) } catch { throw XDPSocket.Failure(.noSuchInterface, error) }
        // The frame plus the kernel's XDP headroom (256) must fit a chunk.
        guard mtu + 18 + 256 <= configuration.frameSize else {
            throw XDPSocket.Failure(.mtuTooLarge, SystemError("MTU \(mtu) of \(interface) does not fit a \(configuration.frameSize)-byte UMEM frame", errno: EINVAL))
        }
        interfaceName = interface
        interfaceIndex = index
        self.configuration = configuration
        do {
            umem = try MemoryMapping(anonymousLength: configuration.queueCount * 2 * size * configuration.frameSize)
            map = FileDescriptor(adopting: try systemCall("bpf(BPF_MAP_CREATE, XSKMAP)") {
                vhost_shims_xdp_map_create(configuration.queue &+ UInt32(configuration.queueCount))
            })
            let map = map.rawValue
            program = FileDescriptor(adopting: try systemCall("bpf(BPF_PROG_LOAD, xdp redirect)") {
                vhost_shims_xdp_program_load(map, nil, 0)
            })
        } catch {
            throw XDPSocket.Failure(error.permissionDenied ? .permissionDenied : .failed, error)
        }
        (link, mode) = try Self.attach(program.rawValue, to: index, interface: interface, mode: configuration.mode)
    }

    deinit {
        // The program stops redirecting before the UMEM goes.
        link.close()
    }

    /// Attaches the program in `mode` (auto: native, then generic). The link fd owns it.
    private static func attach(_ program: Int32, to index: Int32, interface: String,
                               mode: XDPSocket.AttachMode) throws(XDPSocket.Failure) -> (FileDescriptor, XDPSocket.AttachMode) {
        let tries: [XDPSocket.AttachMode] = mode == .auto ? [.native, .generic] : [mode]
        var last = SystemError("bpf(BPF_LINK_CREATE)", errno: EINVAL)
        for attempt in tries {
            let flags = UInt32(attempt == .native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE)
            do {
                let link = try systemCall("bpf(BPF_LINK_CREATE, XDP \(attempt.rawValue) on \(interface))") {
                    vhost_shims_xdp_link_create(program, index, flags)
                }
                return (FileDescriptor(adopting: link), attempt)
            } catch {
                last = error
                // Another program on the interface: no other mode will do better.
                if error.errno == EBUSY || error.errno == EEXIST { throw XDPSocket.Failure(.busy, error) }
            }
        }
        if last.permissionDenied { throw XDPSocket.Failure(.permissionDenied, last) }
        throw XDPSocket.Failure(mode == .generic ? .failed : .modeUnsupported, last)
    }
}
