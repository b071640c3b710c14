// The kafkajs compatibility suite: each scenario listed in compat-tests/matrix/scenarios.py as a
// small application with assertions, one JSON line per scenario on stdout (kafkajs logs go to
// stderr). Configuration comes from the environment (COMPAT_BOOTSTRAP, COMPAT_PREFIX,
// COMPAT_SKIP, COMPAT_ONLY; the secured listeners' COMPAT_SASL_SSL_BOOTSTRAP and the rest that
// compat-tests/matrix/security.py lists). This file is the runner and the scenario table; the
// scenarios are in scenarios_*.js, what they share in common.js.
'use strict'

const { registerCodecs } = require('./codecs')
const { Skip, withTimeout, describeError } = require('./common')
const { CODECS, metadata, produceConsume, idempotentProduce } = require('./scenarios_produce')
const { groupRebalance, commitResume, consumerProtocol, shareGroup } = require('./scenarios_groups')
const { adminTopics, adminConfigs } = require('./scenarios_admin')
const { transactions, txnPipeline } = require('./scenarios_transactions')
const {
  securitySaslPlain, securitySaslScram, securityMtls, securityAcl
} = require('./scenarios_security')

const SCENARIO_TIMEOUT_MS = 60000

function emit (scenario, result, reason, seconds, topic) {
  const line = { scenario, result, reason, seconds }
  if (topic) line.topic = topic
  process.stdout.write(JSON.stringify(line) + '\n')
}

async function main () {
  registerCodecs()
  process.stdout.write(JSON.stringify({ client: 'kafkajs', version: require('kafkajs/package.json').version }) + '\n')
  const skips = new Map((process.env.COMPAT_SKIP || '').split('\n')
    .filter(line => line.includes('\t')).map(line => line.split('\t', 2)))
  const only = process.env.COMPAT_ONLY ? process.env.COMPAT_ONLY.split(',') : null
  const scenarios = [['metadata', metadata]]
  for (const codec of Object.keys(CODECS)) {
    scenarios.push([`produce-consume-${codec}`, () => produceConsume(codec)])
  }
  scenarios.push(
    ['idempotent-produce', idempotentProduce],
    ['group-rebalance', groupRebalance],
    ['commit-resume', commitResume],
    ['consumer-protocol', consumerProtocol],
    ['share-group', shareGroup],
    ['admin-topics', adminTopics],
    ['admin-configs', adminConfigs],
    ['transactions', transactions],
    ['txn-pipeline', txnPipeline],
    ['security-sasl-plain', securitySaslPlain],
    ['security-sasl-scram', securitySaslScram],
    ['security-mtls', securityMtls],
    ['security-acl', securityAcl]
  )
  for (const [name, run] of scenarios) {
    if (only && !only.includes(name)) continue
    if (skips.has(name)) {
      emit(name, 'skip', skips.get(name), 0)
      continue
    }
    const start = Date.now()
    try {
      const topic = await withTimeout(run(), SCENARIO_TIMEOUT_MS, () => 'scenario')
      emit(name, 'pass', '', (Date.now() - start) / 1000, topic)
    } catch (err) {
      if (err instanceof Skip) emit(name, 'skip', err.message, (Date.now() - start) / 1000)
      else emit(name, 'fail', describeError(err), (Date.now() - start) / 1000)
    }
  }
  process.exit(0) // a scenario that timed out may have left clients behind
}

main().catch(err => {
  process.stderr.write(`suite crashed: ${err.stack}\n`)
  process.exit(1)
})
