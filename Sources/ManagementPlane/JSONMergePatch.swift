/// JSON Merge Patch (RFC 7396, section 2): a patch object's members replace the target's,
/// null removes a member, and objects merge member by member; any other patch value
/// replaces the target whole.
public enum JSONMergePatch {
    public static func apply(_ patch: JSON, to target: JSON) -> JSON {
        guard case .object(let patchMembers) = patch else { return patch }
        var result = target.objectValue ?? [:]
        for (key, value) in patchMembers {
            if value == .null {
                result.removeValue(forKey: key)
            } else {
                result[key] = apply(value, to: result[key] ?? .null)
            }
        }
        return .object(result)
    }
}
