// The kafkajs compatibility suite: each scenario listed in compat-tests/matrix/scenarios.py as a
// small application with assertions, one JSON line per scenario on stdout (kafkajs logs go to
// stderr). Configuration comes from the environment (COMPAT_BOOTSTRAP, COMPAT_PREFIX,
// COMPAT_SKIP, COMPAT_ONLY; the secured listeners' COMPAT_SASL_SSL_BOOTSTRAP and the rest that
// compat-tests/matrix/security.py lists).
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const {
  Kafka, CompressionTypes, ConfigResourceTypes, ConfigSource, Partitioners, logLevel,
  AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes
} = require('kafkajs')
const { registerCodecs } = require('./codecs')

const RECORDS = 100
const SECURED_RECORDS = 10
const REFUSED_MS = 5000
const WAIT_MS = 30000
const SCENARIO_TIMEOUT_MS = 60000
const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

const bootstrap = requireEnv('COMPAT_BOOTSTRAP')
const prefix = requireEnv('COMPAT_PREFIX')

const kafka = newKafka(bootstrap)

/** A verdict, not an error: the scenario cannot run here (the message says why). */
class Skip extends Error {}

function newKafka (broker, options = {}) {
  return new Kafka({
    clientId: prefix,
    brokers: [broker],
    logLevel: logLevel.ERROR,
    // kafkajs logs to stdout by default; stdout carries the results.
    logCreator: () => ({ namespace, level, log }) => {
      process.stderr.write(`kafkajs ${level} ${namespace}: ${log.message}\n`)
    },
    retry: { retries: 5 },
    ...options
  })
}

// -- scenarios ------------------------------------------------------------------------------------

async function metadata () {
  const topic = `${prefix}-metadata`
  return withAdmin(async admin => {
    await createTopic(admin, topic, 3)
    const cluster = await admin.describeCluster()
    assert.equal(cluster.brokers.length, 1, `expected one broker, got ${JSON.stringify(cluster.brokers)}`)
    const [broker] = cluster.brokers
    assert.equal(`${broker.host}:${broker.port}`, bootstrap, 'advertised address')
    assert.ok(cluster.clusterId, 'no cluster id')
    assert.equal(cluster.controller, broker.nodeId, 'controller')
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics[0].partitions.length, 3, `partitions ${JSON.stringify(topics[0].partitions)}`)
    for (const p of topics[0].partitions) {
      assert.equal(p.partitionErrorCode, 0, `partition ${p.partitionId} error`)
      assert.equal(p.leader, broker.nodeId, `leader of partition ${p.partitionId}`)
      assert.deepEqual(p.replicas, [broker.nodeId], `replicas of partition ${p.partitionId}`)
    }
    assert.ok((await admin.listTopics()).includes(topic), 'topic not listed')
  })
}

async function produceConsume (codec) {
  const topic = `${prefix}-pc-${codec}`
  await withAdmin(admin => createTopic(admin, topic, 1))
  const sent = Array.from({ length: RECORDS }, (_, i) => sampleMessage(i, codec))
  await withProducer({}, producer =>
    producer.send({ topic, acks: -1, compression: CODECS[codec], messages: sent }))
  const got = await readAll(topic, sent.length)
  sent.forEach((want, i) => {
    const message = got[i]
    assert.equal(message.key === null ? null : message.key.toString(), want.key, `record ${i} key`)
    assert.equal(message.value.toString(), want.value, `record ${i} value`)
    assert.deepEqual(headerList(message.headers), headerList(want.headers), `record ${i} headers`)
  })
  await checkNothingAfter(topic, got[got.length - 1].offset)
  return topic
}

async function idempotentProduce () {
  const topic = `${prefix}-idempotent`
  const count = 500
  await withAdmin(admin => createTopic(admin, topic, 1))
  const values = Array.from({ length: count }, (_, i) => `idem-${i}`)
  await withProducer({ idempotent: true, maxInFlightRequests: 1 }, async producer => {
    // One send at a time: kafkajs orders concurrent send() calls by when their requests are
    // built, not by call order, so only sequential sends have a defined order to check.
    for (let i = 0; i < count; i += 50) {
      const messages = values.slice(i, i + 50).map((value, j) => ({ key: `k${(i + j) % 5}`, value }))
      await producer.send({ topic, acks: -1, messages })
    }
  })
  const got = await readAll(topic, count)
  const gotValues = got.map(m => m.value.toString())
  const firstDiff = gotValues.findIndex((v, i) => v !== values[i])
  assert.equal(firstDiff, -1, `record ${firstDiff} is ${gotValues[firstDiff]}, want ${values[firstDiff]}`)
  await checkNothingAfter(topic, got[got.length - 1].offset)
  return topic
}

async function groupRebalance () {
  const topic = `${prefix}-group`
  const group = `${prefix}-group`
  const partitions = 4
  const count = 40
  await withAdmin(admin => createTopic(admin, topic, partitions))
  await withProducer({}, producer => producer.send({
    topic,
    messages: Array.from({ length: count }, (_, i) => ({ partition: i % partitions, value: `g-${i}` }))
  }))
  const first = new Member(topic, group, 'first')
  const second = new Member(topic, group, 'second')
  try {
    await first.start()
    await waitFor(() => first.assignment.length === partitions, 'the first member to own all 4 partitions')
    await second.start()
    await waitFor(() => {
      const a = first.assignment
      const b = second.assignment
      return a.length > 0 && b.length > 0 && new Set([...a, ...b]).size === partitions &&
        a.length + b.length === partitions
    }, 'the partitions to be split between two members')
    await waitFor(() => new Set([...first.seen, ...second.seen]).size === count,
      `the two members to consume all ${count} records`)
    await second.stop()
    await waitFor(() => first.assignment.length === partitions,
      'the first member to own all partitions after the second left')
  } finally {
    await second.stop()
    await first.stop()
  }
}

async function commitResume () {
  const topic = `${prefix}-commit`
  const groupId = `${prefix}-commit`
  await withAdmin(admin => createTopic(admin, topic, 1))
  await withProducer({}, producer => producer.send({
    topic, messages: Array.from({ length: 20 }, (_, i) => ({ value: `c-${i}` }))
  }))
  let committed
  const firstBatch = await consumeGroup(groupId, topic, 10, async (consumer, message, index) => {
    if (index === 9) {
      committed = BigInt(message.offset) + 1n
      await consumer.commitOffsets([{ topic, partition: 0, offset: committed.toString() }])
    }
  })
  assert.equal(firstBatch[9].value.toString(), 'c-9', '10th record')
  const stored = await withAdmin(admin => admin.fetchOffsets({ groupId, topics: [topic] }))
  assert.equal(stored[0].partitions[0].offset, committed.toString(), 'committed offset')
  let last
  const resumed = await consumeGroup(groupId, topic, 10, async (consumer, message, index) => {
    if (index === 9) {
      last = BigInt(message.offset) + 1n
      await consumer.commitOffsets([{ topic, partition: 0, offset: last.toString() }])
    }
  })
  assert.equal(BigInt(resumed[0].offset), committed, 'resumed at the committed offset')
  assert.deepEqual(resumed.map(m => m.value.toString()),
    Array.from({ length: 10 }, (_, i) => `c-${10 + i}`), 'resumed records')
  const final = await withAdmin(admin => admin.fetchOffsets({ groupId, topics: [topic] }))
  assert.equal(final[0].partitions[0].offset, last.toString(), 'final committed offset')
}

async function adminTopics () {
  const topic = `${prefix}-admin`
  return withAdmin(async admin => {
    assert.equal(await createTopic(admin, topic, 3), true, 'createTopics did not create')
    const { brokers } = await admin.describeCluster()
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics[0].partitions.length, 3, 'partition count')
    for (const p of topics[0].partitions) assert.equal(p.leader, brokers[0].nodeId, 'leader')
    assert.ok((await admin.listTopics()).includes(topic), 'created topic not listed')
    assert.equal(await createTopic(admin, topic, 3), false, 're-creating an existing topic')
    await admin.deleteTopics({ topics: [topic], timeout: WAIT_MS })
    await waitForAsync(async () => !(await admin.listTopics()).includes(topic),
      'the deleted topic to leave the list')
    await assert.rejects(admin.fetchTopicMetadata({ topics: [topic] }),
      err => err.type === 'UNKNOWN_TOPIC_OR_PARTITION', 'describing the deleted topic')
  })
}

async function adminConfigs () {
  const topic = `${prefix}-configs`
  const describe = async (admin, type, name) => {
    const { resources } = await admin.describeConfigs({
      resources: [{ type, name }], includeSynonyms: false
    })
    assert.equal(resources[0].errorCode, 0, `describe ${name}: ${resources[0].errorMessage}`)
    return Object.fromEntries(resources[0].configEntries.map(e => [e.configName, e]))
  }
  return withAdmin(async admin => {
    await createTopic(admin, topic, 1, [{ name: 'retention.ms', value: '3600000' }])
    let configs = await describe(admin, ConfigResourceTypes.TOPIC, topic)
    assert.equal(configs['retention.ms']?.configValue, '3600000', 'retention.ms after create')
    assert.equal(configs['retention.ms'].configSource, ConfigSource.TOPIC_CONFIG, 'retention.ms source')
    assert.equal(configs['cleanup.policy']?.configValue, 'delete', 'cleanup.policy')
    // kafkajs has only the legacy AlterConfigs (it replaces the topic's whole dynamic config).
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{
        type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }]
      }]
    })
    configs = await describe(admin, ConfigResourceTypes.TOPIC, topic)
    assert.equal(configs['retention.ms']?.configValue, '7200000', 'retention.ms after alter')
    const { brokers } = await admin.describeCluster()
    const brokerConfigs = await describe(admin, ConfigResourceTypes.BROKER, String(brokers[0].nodeId))
    assert.ok(brokerConfigs['num.partitions'], 'broker config lacks num.partitions')
    await admin.deleteTopics({ topics: [topic], timeout: WAIT_MS })
  })
}

async function transactions () {
  const topic = `${prefix}-txn`
  await withAdmin(admin => createTopic(admin, topic, 1))
  const options = { transactionalId: `${prefix}-txn`, idempotent: true, maxInFlightRequests: 1 }
  await withProducer(options, async producer => {
    const transaction = async (values, commit) => {
      const txn = await producer.transaction()
      await txn.send({ topic, messages: values.map(value => ({ value })) })
      await (commit ? txn.commit() : txn.abort())
    }
    await transaction(numbered('committed-', 0, 5), true)
    await transaction(numbered('aborted-', 0, 3), false)
    await transaction(numbered('committed-', 5, 6), true)
  })
  const committed = await readAll(topic, 6, { readUncommitted: false })
  assert.deepEqual(committed.map(m => m.value.toString()), numbered('committed-', 0, 6), 'read_committed')
  const everything = await readAll(topic, 9, { readUncommitted: true })
  assert.deepEqual(everything.map(m => m.value.toString()),
    [...numbered('committed-', 0, 5), ...numbered('aborted-', 0, 3), 'committed-5'], 'read_uncommitted')
  return topic
}

/** kafkajs sends one request at a time (maxInFlightRequests 1, as its transactions need) and
 *  speaks transaction version 1: the scenario runs, without the pipelining it is named for. */
async function txnPipeline () {
  const topic = `${prefix}-txn-pipeline`
  const [partitions, transactions, perPartition] = [8, 20, 20]
  const padding = ' pipelined'.repeat(20)
  await withAdmin(admin => createTopic(admin, topic, partitions))
  const sent = []
  const options = { transactionalId: topic, idempotent: true, maxInFlightRequests: 1 }
  await withProducer(options, async producer => {
    for (let t = 0; t < transactions; t++) {
      const messages = []
      for (let i = 0; i < perPartition; i++) {
        for (let p = 0; p < partitions; p++) {
          messages.push({ partition: p, value: `t${t}-p${p}-${i}${padding}` })
        }
      }
      const txn = await producer.transaction()
      await txn.send({ topic, messages })
      await txn.commit()
      sent.push(...messages.map(m => m.value))
    }
  })
  const got = (await readAll(topic, sent.length, { readUncommitted: false })).map(m => m.value.toString())
  const counts = new Map()
  for (const value of got) counts.set(value, (counts.get(value) || 0) + 1)
  for (const value of sent) {
    const n = counts.get(value) || 0
    assert.equal(n, 1, `read_committed saw ${value.split(' ')[0]} ${n} times`)
  }
  assert.equal(got.length, sent.length, 'records read_committed')
  return topic
}

async function securitySaslPlain () {
  const where = secured()
  await securedRoundtrip('security-sasl-plain', where.saslSsl, sasl('plain'))
  assert.ok(await refused(where.saslSsl, sasl('plain', 'wrong')), 'a wrong password was accepted')
}

async function securitySaslScram () {
  const where = secured()
  await securedRoundtrip('security-sasl-scram', where.saslSsl, sasl('scram-sha-512'))
  assert.ok(await refused(where.saslSsl, sasl('scram-sha-512', 'wrong')), 'a wrong password was accepted')
}

async function securityMtls () {
  const where = secured()
  const ssl = { ca: [where.ca] }
  await securedRoundtrip('security-mtls', where.mtls, { ssl: { ...ssl, cert: where.cert, key: where.key } })
  assert.ok(await refused(where.mtls, { ssl }), 'a client without a certificate was accepted')
}

async function securityAcl () {
  const where = secured()
  const topic = `${prefix}-security-acl`
  const user = `User:${where.plain[0]}`
  await withAdmin(async admin => {
    await createTopic(admin, topic, 1)
    // An ACL for someone else names the topic: from now on it is closed to everyone else.
    await admin.createAcls({ acl: [topicAcl(topic, 'User:compat-someone-else', AclOperationTypes.WRITE)] })
  })
  const error = await produceRefused(where.saslSsl, sasl('plain'), topic)
  assert.ok(error, 'produce without WRITE was accepted')
  assert.equal(protocolErrorType(error), 'TOPIC_AUTHORIZATION_FAILED',
    `produce without WRITE failed otherwise: ${describeError(error)}`)
  // The consumer's group is named by no ACL: allow.everyone.if.no.acl.found keeps it open.
  await withAdmin(admin => admin.createAcls({
    acl: [topicAcl(topic, user, AclOperationTypes.WRITE), topicAcl(topic, user, AclOperationTypes.READ)]
  }))
  await roundtrip('security-acl', topic, newKafka(where.saslSsl, sasl('plain')))
}

// -- security -------------------------------------------------------------------------------------

/** The secured listeners and credentials run.py gives its own broker (compat-tests/matrix/security.py). */
function secured () {
  const env = process.env
  if (!env.COMPAT_SASL_SSL_BOOTSTRAP) {
    throw new Skip('no secured listeners (run.py starts them with its own broker)')
  }
  return {
    saslSsl: env.COMPAT_SASL_SSL_BOOTSTRAP,
    mtls: env.COMPAT_MTLS_BOOTSTRAP,
    ca: fs.readFileSync(env.COMPAT_CA_PEM),
    cert: fs.readFileSync(env.COMPAT_CLIENT_CERT_PEM),
    key: fs.readFileSync(env.COMPAT_CLIENT_KEY_PEM),
    plain: [env.COMPAT_PLAIN_USER, env.COMPAT_PLAIN_PASSWORD],
    scram: [env.COMPAT_SCRAM_USER, env.COMPAT_SCRAM_PASSWORD]
  }
}

// The broker's certificate names 127.0.0.1, which Node checks against the IP SANs: verification
// stays on.
function sasl (mechanism, password) {
  const where = secured()
  const [username, right] = mechanism === 'plain' ? where.plain : where.scram
  return { ssl: { ca: [where.ca] }, sasl: { mechanism, username, password: password || right } }
}

/** Produces SECURED_RECORDS through `broker` with `security` and reads them back there. */
async function securedRoundtrip (scenario, broker, security) {
  const topic = `${prefix}-${scenario}`
  await withAdmin(admin => createTopic(admin, topic, 1))
  await roundtrip(scenario, topic, newKafka(broker, security))
}

/** Produces SECURED_RECORDS to partition 0 of the existing `topic` with `client`, reads them back. */
async function roundtrip (scenario, topic, client) {
  const values = Array.from({ length: SECURED_RECORDS }, (_, i) => `${prefix} ${scenario} ${i}`)
  await withProducer({}, producer => producer.send({
    topic, acks: -1, messages: values.map(value => ({ partition: 0, value }))
  }), client)
  const got = await consumeGroup(`${prefix}-${scenario}`, topic, values.length, null, {}, client)
  assert.deepEqual(got.map(m => m.value.toString()), values, 'records read back over the secured listener')
}

/** An ALLOW ACL for `principal` from any host on the topic named `topic`. */
function topicAcl (topic, principal, operation) {
  return {
    resourceType: AclResourceTypes.TOPIC,
    resourceName: topic,
    resourcePatternType: ResourcePatternTypes.LITERAL,
    principal,
    host: '*',
    operation,
    permissionType: AclPermissionTypes.ALLOW
  }
}

/** The error of sending one record to partition 0 of `topic` (without retries), null if it was acknowledged. */
async function produceRefused (broker, security, topic) {
  const options = {
    ...security,
    connectionTimeout: REFUSED_MS,
    authenticationTimeout: REFUSED_MS,
    requestTimeout: REFUSED_MS,
    retry: { retries: 0 }
  }
  const producer = newKafka(broker, options).producer({
    createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 0 }
  })
  try {
    await withTimeout(producer.connect(), 2 * REFUSED_MS, () => 'connecting')
    await withTimeout(producer.send({
      topic, acks: -1, timeout: REFUSED_MS, messages: [{ partition: 0, value: 'refused' }]
    }), 2 * REFUSED_MS, () => 'producing')
    return null
  } catch (err) {
    process.stderr.write(`produce refused as expected: ${describeError(err)}\n`)
    return err
  } finally {
    await producer.disconnect()
  }
}

/** The protocol error type in `err` or the errors it wraps (cause, originalError, errors), if any. */
function protocolErrorType (err, depth = 0) {
  if (!err || typeof err !== 'object' || depth > 8) return undefined
  if (err.name === 'KafkaJSProtocolError' && err.type) return err.type
  for (const inner of [err.cause, err.originalError, ...(Array.isArray(err.errors) ? err.errors : [])]) {
    const type = protocolErrorType(inner, depth + 1)
    if (type) return type
  }
  return err.type
}

/** Whether connecting to `broker` with `security` fails (or does not finish) within seconds. */
async function refused (broker, security) {
  const options = {
    ...security, connectionTimeout: REFUSED_MS, authenticationTimeout: REFUSED_MS, retry: { retries: 0 }
  }
  const admin = newKafka(broker, options).admin()
  try {
    await withTimeout(admin.connect(), 2 * REFUSED_MS, () => 'connecting')
    return false
  } catch (err) {
    // An authentication error, a TLS alert or a timeout: all mean refused; the log says which.
    process.stderr.write(`refused as expected: ${describeError(err)}\n`)
    return true
  } finally {
    await admin.disconnect()
  }
}

// -- group member ---------------------------------------------------------------------------------

/** One consumer-group member; kafkajs reports each assignment with the GROUP_JOIN event. */
class Member {
  constructor (topic, groupId, name) {
    this.topic = topic
    this.assignment = []
    this.seen = new Set()
    this.stopped = false
    this.consumer = kafka.consumer({
      groupId, sessionTimeout: 10000, heartbeatInterval: 300, rebalanceTimeout: 20000,
      maxWaitTimeInMs: 200 // heartbeats go out between fetches: keep fetches short
    })
    this.consumer.on(this.consumer.events.GROUP_JOIN, event => {
      this.assignment = event.payload.memberAssignment[topic] || []
    })
    this.name = name
  }

  async start () {
    await this.consumer.connect()
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => { this.seen.add(message.value.toString()) }
    })
  }

  async stop () {
    if (this.stopped) return
    this.stopped = true
    await this.consumer.disconnect() // leaves the group
    this.assignment = []
  }
}

// -- helpers --------------------------------------------------------------------------------------

async function withAdmin (body) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await body(admin)
  } finally {
    await admin.disconnect()
  }
}

async function withProducer (options, body, client = kafka) {
  const producer = client.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...options })
  await producer.connect()
  try {
    return await body(producer)
  } finally {
    await producer.disconnect()
  }
}

function createTopic (admin, topic, numPartitions, configEntries = []) {
  return admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1, configEntries }],
    waitForLeaders: true,
    timeout: WAIT_MS
  })
}

/**
 * The first `count` messages of the topic from the beginning. kafkajs has no manual assignment:
 * it consumes through a consumer group of its own.
 */
async function readAll (topic, count, options = {}) {
  const groupId = `${prefix}-reader-${topic}-${options.readUncommitted ? 'all' : 'committed'}`
  return consumeGroup(groupId, topic, count, null, options)
}

async function consumeGroup (groupId, topic, count, onMessage, options = {}, client = kafka) {
  const consumer = client.consumer({ groupId, ...options })
  const messages = []
  let done
  const finished = new Promise(resolve => { done = resolve })
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        if (messages.length >= count) return
        messages.push(message)
        if (onMessage) await onMessage(consumer, message, messages.length - 1)
        if (messages.length === count) done()
      }
    })
    await withTimeout(finished, WAIT_MS, () => `received ${messages.length} of ${count} records`)
  } finally {
    await consumer.disconnect()
  }
  return messages
}

/** The partition ends right after the last record read: nothing was duplicated. */
async function checkNothingAfter (topic, lastOffset) {
  const offsets = await withAdmin(admin => admin.fetchTopicOffsets(topic))
  assert.equal(BigInt(offsets[0].high), BigInt(lastOffset) + 1n,
    `high watermark ${offsets[0].high}, last expected record at ${lastOffset}`)
}

function sampleMessage (i, codec) {
  const headers = { index: String(i), codec }
  if (i % 3 === 0) headers.dup = ['a', 'b']
  return {
    key: i % 10 === 9 ? null : `key-${i % 7}`,
    value: `record ${i} ${'lorem ipsum dolor sit amet '.repeat(8)}`,
    headers
  }
}

function headerList (headers) {
  const out = []
  for (const [name, value] of Object.entries(headers || {})) {
    for (const v of Array.isArray(value) ? value : [value]) out.push(`${name}=${v.toString()}`)
  }
  return out
}

function numbered (text, from, to) {
  return Array.from({ length: to - from }, (_, i) => `${text}${from + i}`)
}

const pause = ms => new Promise(resolve => setTimeout(resolve, ms))

// Polls a condition other callbacks change; there is no single event to await.
async function waitFor (condition, what) {
  return waitForAsync(async () => condition(), what)
}

async function waitForAsync (condition, what) {
  const deadline = Date.now() + WAIT_MS
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)
    await pause(20)
  }
}

function withTimeout (promise, ms, describe) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${describe()}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function describeError (err) {
  if (err instanceof assert.AssertionError) return err.message.split('\n')[0]
  return `${err.name}: ${err.message}`
}

function requireEnv (name) {
  const value = process.env[name]
  if (!value) {
    process.stderr.write(`${name} is not set (run.py sets it)\n`)
    process.exit(2)
  }
  return value
}

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
