// What the kafkajs suite's scenarios share: the broker and name prefix from the environment,
// the clients, topic creation, reading a topic back, waiting and timeouts.
'use strict'

const assert = require('node:assert/strict')
const { Kafka, Partitioners, logLevel } = require('kafkajs')

const WAIT_MS = 30000

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

module.exports = {
  WAIT_MS,
  bootstrap,
  prefix,
  kafka,
  Skip,
  newKafka,
  withAdmin,
  withProducer,
  createTopic,
  readAll,
  consumeGroup,
  checkNothingAfter,
  waitFor,
  waitForAsync,
  withTimeout,
  describeError
}
