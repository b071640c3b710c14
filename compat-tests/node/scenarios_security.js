// The security scenarios of the kafkajs suite, over the secured listeners run.py adds to a broker
// it starts: SASL PLAIN and SCRAM over SASL_SSL, mutual TLS, and ACLs.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const {
  Partitioners, AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes
} = require('kafkajs')
const {
  prefix, Skip, newKafka, withAdmin, withProducer, createTopic, consumeGroup, withTimeout,
  describeError
} = require('./common')

const SECURED_RECORDS = 10
const REFUSED_MS = 5000

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

module.exports = { securitySaslPlain, securitySaslScram, securityMtls, securityAcl }
