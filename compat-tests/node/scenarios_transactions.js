// The transaction scenarios of the kafkajs suite: transactions and txn-pipeline.
'use strict'

const assert = require('node:assert/strict')
const { prefix, withAdmin, withProducer, createTopic, readAll } = require('./common')

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

function numbered (text, from, to) {
  return Array.from({ length: to - from }, (_, i) => `${text}${from + i}`)
}

module.exports = { transactions, txnPipeline }
