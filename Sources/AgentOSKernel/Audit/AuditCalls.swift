import AgentOSProtocol
import AgentOSStore

/// The operator's audit calls: read the chain, verify it.
struct AuditCalls {
    let services: KernelServices

    func list(_ request: Agentos_V1_AuditRequest) async throws -> Agentos_V1_AuditList {
        let agentID = request.agent.isEmpty ? nil : try await services.lifecycle.resolve(request.agent).id
        let limit = request.limit == 0 ? 1_000 : Int(min(request.limit, 10_000))
        var list = Agentos_V1_AuditList()
        list.records = try services.store.audit(afterSeq: request.afterSeq, agentID: agentID, since: request.sinceNs,
                                                limit: limit).map { record in
            var wire = Agentos_V1_AuditRecord()
            wire.seq = record.seq
            wire.timeNs = record.time
            wire.kind = record.kind
            wire.agentID = record.agentID
            wire.message = record.message
            wire.data = record.data
            wire.previousHash = record.previousHash
            wire.hash = record.hash
            return wire
        }
        return list
    }

    func verify() throws -> Agentos_V1_AuditVerifyResponse {
        let result = try services.store.verifyAudit()
        var response = Agentos_V1_AuditVerifyResponse()
        response.intact = result.firstBad == nil
        response.records = UInt64(result.records)
        response.firstBadSeq = result.firstBad ?? 0
        response.problem = result.problem ?? ""
        response.lastHash = result.lastHash
        return response
    }
}
