import ArgumentParser
import ManagementClient

/// `features NAME [--offer +tso4,-mrg_rxbuf]`: what a vhost-user port supports, offers and
/// negotiated, and changes to the offer (PATCH /v1/ports/{name}/features).
struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A vhost-user port's virtio features: supported, offered, negotiated; --offer changes the offer.")

    @Argument(help: "The port's name.") var name: String
    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("Enable (+name or name) and disable (-name) features in the offer, comma-separated.", valueName: "+a,-b"))
    var offer: String?
    @OptionGroup var options: APIOptions

    func validate() throws { _ = try change() }

    /// The PATCH body for --offer: {"enable": [...], "disable": [...]}.
    func change() throws(ValidationError) -> JSONValue? {
        guard let offer else { return nil }
        var enable: [JSONValue] = [], disable: [JSONValue] = []
        for item in offer.split(separator: ",", omittingEmptySubsequences: false) {
            let feature = item.drop { $0 == "+" || $0 == "-" }
            guard !feature.isEmpty, item.count - feature.count <= 1 else {
                throw ValidationError("--offer: \"\(item)\" is not +name, -name or name")
            }
            if item.hasPrefix("-") { disable.append(.string(String(feature))) } else { enable.append(.string(String(feature))) }
        }
        if let both = enable.first(where: disable.contains) {
            throw ValidationError("--offer: \(both.stringValue ?? "") is both enabled and disabled")
        }
        return .object(["enable": .array(enable), "disable": .array(disable)])
    }

    func run() throws {
        let session = try options.session()
        let path = APISession.portPath(name, "/features")
        if let change = try change() {
            try session.run("PATCH", path, body: change, table: Self.table)
        } else {
            try session.run("GET", path, table: Self.table)
        }
    }

    /// One line per supported feature (offered? negotiated?), the protocol features, and after
    /// a change when it applies.
    static func table(_ features: JSONValue) -> String {
        var out = names(features, rows: features["supported"], label: "FEATURE")
        out += "\n" + names(features["protocol"] ?? .null, rows: features["protocol"]?["offered"], label: "PROTOCOL FEATURE")
        if let applies = features["applies"]?.stringValue {
            out += "\napplies: \(applies) (\(features["message"]?.stringValue ?? ""))\n"
        }
        return out
    }

    private static func names(_ sets: JSONValue, rows: JSONValue?, label: String) -> String {
        func members(_ set: JSONValue?) -> [String]? {
            guard let set, !set.isNull else { return nil }
            return set["names"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        let offered = members(sets["offered"]) ?? []
        let negotiated = members(sets["negotiated"])
        var table = TextTable([label, "OFFERED", "NEGOTIATED"])
        for name in members(rows) ?? [] {
            table.add([name, offered.contains(name) ? "yes" : "no", negotiated.map { $0.contains(name) ? "yes" : "no" } ?? "-"])
        }
        let masks = "offered \(Cell.text(sets["offered"]?["mask"])), negotiated \(Cell.text(sets["negotiated"]?["mask"]))"
        return table.rendered() + "(\(masks); - : no session has negotiated yet)\n"
    }
}
