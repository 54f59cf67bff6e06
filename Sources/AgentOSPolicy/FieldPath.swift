// Where a value sits in a policy document, written the way people point at
// it: `supervisor.children[1].sandbox.memory`.

struct FieldPath: Hashable, CustomStringConvertible {
    private(set) var description: String

    static let top = FieldPath(description: "")

    func key(_ name: String) -> FieldPath {
        FieldPath(description: description.isEmpty ? name : description + "." + name)
    }

    func index(_ position: Int) -> FieldPath {
        FieldPath(description: description + "[\(position)]")
    }
}
