import Foundation

/// What a memory search looks for, and how its candidates are ranked.
///
/// The index (FTS5) finds the candidates: a namespace's newest matches, at
/// most `StateStore.searchWindow`. They are ranked here with BM25 (k1 1.2,
/// b 0.75, value and tags as one text) rather than with SQLite's bm25():
/// that function counts every entry of the index holding each query word
/// (for the IDF) on every call, which for a word in most of a million
/// entries is a pass over a million index entries. Here the IDF comes from
/// the candidates: exact when all matches are among them, else estimated
/// from the share of candidates holding each term, and N is the namespace's
/// entry count, which the store keeps.
struct MemoryQuery {
    enum Kind: Equatable {
        case word, prefix, phrase
    }

    struct Term: Equatable {
        let kind: Kind
        /// As the user wrote it (the FTS5 expression quotes it).
        let text: String
        /// As this ranking tokenizes it.
        let tokens: [[UInt8]]
    }

    let terms: [Term]

    static let maximumTerms = 32

    /// Terms separated by spaces: `"several words"` a phrase, `word*` a
    /// prefix, anything else a word; terms without a letter or digit dropped.
    init(_ query: String) {
        var terms: [Term] = []
        var rest = Substring(query)
        while terms.count < Self.maximumTerms {
            rest = rest.drop { $0.isWhitespace }
            guard let first = rest.first else { break }
            let kind: Kind
            let text: Substring
            if first == "\"" {
                let body = rest.dropFirst()
                text = body.prefix { $0 != "\"" }
                rest = body.dropFirst(text.count + 1)
                kind = .phrase
            } else {
                let word = rest.prefix { !$0.isWhitespace }
                rest = rest.dropFirst(word.count)
                if word.count > 1, word.hasSuffix("*") {
                    text = word.dropLast()
                    kind = .prefix
                } else {
                    text = word
                    kind = .word
                }
            }
            guard text.contains(where: { $0.isLetter || $0.isNumber }) else { continue }
            let tokens = Self.termTokens(String(text))
            guard !tokens.isEmpty else { continue }
            terms.append(Term(kind: tokens.count > 1 ? .phrase : kind, text: String(text), tokens: tokens))
        }
        self.terms = terms
    }

    /// The FTS5 expression: each term quoted (its quotes doubled), a prefix
    /// with `*`, any of them matching. Nil when there is nothing to look for.
    var expression: String? {
        guard !terms.isEmpty else { return nil }
        return terms.map { term in
            let quoted = "\"" + term.text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            return term.kind == .prefix ? quoted + "*" : quoted
        }.joined(separator: " OR ")
    }

    // MARK: Ranking

    struct Candidate {
        let index: Int
        let text: String
    }

    /// BM25 scores of the candidates (higher is better), by their index.
    /// `complete`: the candidates are every match in the namespace;
    /// `entries`: how many entries the namespace holds.
    func scores(_ candidates: [Candidate], complete: Bool, entries: Int) -> [Int: Double] {
        let k1 = 1.2, b = 0.75
        var lengths: [Int] = []
        var frequencies: [[Int]] = []   // [candidate][term]
        lengths.reserveCapacity(candidates.count)
        frequencies.reserveCapacity(candidates.count)
        for candidate in candidates {
            let tokens = Self.tokens(candidate.text)
            lengths.append(tokens.count)
            frequencies.append(terms.map { Self.frequency(of: $0, in: tokens) })
        }
        guard !candidates.isEmpty else { return [:] }
        let averageLength = max(1, Double(lengths.reduce(0, +)) / Double(candidates.count))
        let total = Double(max(entries, candidates.count))
        let idf: [Double] = terms.indices.map { term in
            let holding = Double(frequencies.count { $0[term] > 0 })
            let inNamespace = complete ? holding : holding / Double(candidates.count) * total
            return log((total - inNamespace + 0.5) / (inNamespace + 0.5) + 1)
        }
        var scores: [Int: Double] = [:]
        for (row, candidate) in candidates.enumerated() {
            let norm = k1 * (1 - b + b * Double(lengths[row]) / averageLength)
            var score = 0.0
            for term in terms.indices where frequencies[row][term] > 0 {
                let tf = Double(frequencies[row][term])
                score += idf[term] * tf * (k1 + 1) / (tf + norm)
            }
            scores[candidate.index] = score
        }
        return scores
    }

    static func frequency(of term: Term, in tokens: [ArraySlice<UInt8>]) -> Int {
        switch term.kind {
        case .word:
            let word = term.tokens[0]
            return tokens.count { $0.elementsEqual(word) }
        case .prefix:
            let prefix = term.tokens[0]
            return tokens.count { $0.starts(with: prefix) }
        case .phrase:
            let phrase = term.tokens
            guard tokens.count >= phrase.count else { return 0 }
            var count = 0
            for start in 0...(tokens.count - phrase.count)
            where zip(tokens[start..<(start + phrase.count)], phrase).allSatisfy({ $0.elementsEqual($1) }) {
                count += 1
            }
            return count
        }
    }

    /// Words as SQLite's unicode61 tokenizer splits them, near enough:
    /// runs of letters and digits, case and diacritics folded.
    static func tokens(_ text: String) -> [ArraySlice<UInt8>] {
        let bytes: [UInt8]
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            bytes = text.utf8.map { ($0 >= 0x41 && $0 <= 0x5a) ? $0 + 0x20 : $0 }
        } else {
            // Separators become a space, so the byte split below is the same.
            let folded = text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
            bytes = Array(String(folded.map { $0.isLetter || $0.isNumber ? $0 : " " }).utf8)
        }
        return bytes.split { byte in
            byte < 0x80 && !((byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7a))
        }
    }

    static func termTokens(_ text: String) -> [[UInt8]] {
        tokens(text).map { Array($0) }
    }
}
