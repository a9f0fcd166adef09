import Foundation

/// The daemon's saved ports as its state directory holds them (docs/API.md "Persistence"):
/// the snapshot `ports.json` with the journal `ports.journal` replayed onto it. Read
/// independently of the daemon's own loader, as an operator's script would.
public enum SavedPortState {
    public static func ports(inStateDirectory directory: String) throws -> [[String: Any]] {
        let snapshot = try Data(contentsOf: URL(fileURLWithPath: directory + "/ports.json"))
        var ports = (try JSONSerialization.jsonObject(with: snapshot) as? [String: Any])?["ports"] as? [[String: Any]] ?? []
        let journalURL = URL(fileURLWithPath: directory + "/ports.journal")
        guard let journal = try? Data(contentsOf: journalURL) else { return ports }
        for line in journal.split(separator: UInt8(ascii: "\n")) {
            guard let record = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
            if let removed = record["removed"] as? String {
                ports.removeAll { $0["name"] as? String == removed }
            } else if let saved = record["saved"] as? [String: Any], let name = saved["name"] as? String {
                if let index = ports.firstIndex(where: { $0["name"] as? String == name }) { ports[index] = saved } else { ports.append(saved) }
            }
        }
        return ports
    }
}
