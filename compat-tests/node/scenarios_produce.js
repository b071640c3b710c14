// The metadata, produce-consume-<codec> and idempotent-produce scenarios of the kafkajs suite.
'use strict'

const assert = require('node:assert/strict')
const { CompressionTypes } = require('kafkajs')
const {
  bootstrap, prefix, withAdmin, withProducer, createTopic, readAll, checkNothingAfter
} = require('./common')

const RECORDS = 100
const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

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

module.exports = { CODECS, metadata, produceConsume, idempotentProduce }
